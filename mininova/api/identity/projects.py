"""/v3/projects: list (with Keystone's tag filters), show, create, update, delete; and
/v3/auth/projects, the projects a token's user may scope to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.errors import BadRequest
from mininova.api.identity import schemas, views
from mininova.api.identity.project_tags import check_tags
from mininova.api.responses import json_response
from mininova.api.services import Services
from mininova.api.validation import validated_body
from mininova.identity import projects

# ?filter (comma-separated tags) → the field of `projects.TagFilter`
_TAG_FILTERS = {"tags": "all", "tags-any": "any", "not-tags": "not_all", "not-tags-any": "not_any"}


def _tag_filter(query: Mapping[str, str]) -> projects.TagFilter | None:
    fields = {
        field: tuple(tag for tag in query[param].split(",") if tag)
        for param, field in _TAG_FILTERS.items()
        if param in query
    }
    return projects.TagFilter(**fields) if fields else None


def _listing(svc: Services, rows: list[dict[str, Any]], path: str) -> web.Response:
    return json_response(
        {
            "projects": [views.project(svc.url, r) for r in rows],
            "links": views.collection_links(svc.url, path),
        }
    )


async def list_projects(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    rows = await projects.list_visible(
        svc.identity,
        user_id=ctx.user_id,
        all_projects=ctx.is_admin,
        name=request.query.get("name"),
        tags=_tag_filter(request.query),
    )
    return _listing(svc, rows, "projects")


async def list_auth_projects(request: web.Request) -> web.Response:
    """GET/HEAD /v3/auth/projects: every project where the token's user holds a role, for
    any authenticated user (Keystone lists disabled ones too, with `enabled` false)."""
    svc, ctx = services(request), context(request)
    rows = await projects.list_for_user(svc.identity, ctx.user_id)
    return _listing(svc, rows, "auth/projects")


async def show_project(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    row = await projects.get(svc.identity, request.match_info["project_id"])
    if not ctx.is_admin and row["id"] != ctx.project_id:
        ctx.require_admin("identity:get_project")
    return json_response({"project": views.project(svc.url, row)})


async def create_project(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:create_project")
    body = (await validated_body(request, schemas.PROJECT_CREATE))["project"]
    tags = check_tags(body["tags"]) if "tags" in body else []
    row = await projects.create(
        svc.identity,
        name=body["name"],
        description=body.get("description") or "",
        enabled=body.get("enabled", True),
        tags=tags,
    )
    return json_response({"project": views.project(svc.url, row)}, status=201)


def _project_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in body:
            if not isinstance(body[key], str):
                raise BadRequest(f"Invalid input for field '{key}'.")
            changes[key] = body[key]
    if "enabled" in body:
        changes["enabled"] = bool(body["enabled"])
    if "tags" in body:
        changes["tags"] = check_tags(body["tags"])
    return changes


async def update_project(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:update_project")
    project_id = request.match_info["project_id"]
    await projects.get(svc.identity, project_id)  # 404 before the body's 400
    body = (await validated_body(request, schemas.PROJECT_UPDATE))["project"]
    row = await projects.update(svc.identity, project_id, _project_changes(body))
    return json_response({"project": views.project(svc.url, row)})


async def delete_project(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:delete_project")
    await projects.delete(svc.identity, request.match_info["project_id"])
    return web.Response(status=204)
