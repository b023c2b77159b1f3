"""/v3/projects/{project_id}/tags: list, replace and clear a project's tags; check, add and
remove one tag. Reads follow show_project's rule (an admin, or a token for that project);
writes are the admin's, like every other project write."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.identity import schemas, views
from mininova.api.responses import json_response
from mininova.api.validation import compiled, validated_body
from mininova.identity import projects


def _invalid(field: str, value: Any, schema: dict[str, Any]) -> BadRequest | None:
    """Keystone's 400 for the first way `value` breaks `schema`, or None if it is valid."""
    errors = sorted(
        compiled(schema).iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]
    )
    if not errors:
        return None
    path = "/".join([field, *(str(p) for p in errors[0].absolute_path)])
    return BadRequest(f"Invalid input for field '{path}': {errors[0].message}")


def check_tags(value: Any) -> list[str]:
    """A request's list of tags, once each is a valid tag (else 400)."""
    error = _invalid("tags", value, schemas.PROJECT_TAGS)
    if error is not None:
        raise error
    return list(value)


def check_tag(value: str) -> str:
    """The tag of a request path, once it is a valid tag (else 400)."""
    error = _invalid("tag", value, schemas.PROJECT_TAG)
    if error is not None:
        raise error
    return value


async def _readable(request: web.Request, action: str) -> dict[str, Any]:
    """The project of the path, which the caller may read (show_project's rule)."""
    svc, ctx = services(request), context(request)
    row = await projects.get(svc.identity, request.match_info["project_id"])
    if not ctx.is_admin and row["id"] != ctx.project_id:
        ctx.require_admin(action)
    return row


async def list_tags(request: web.Request) -> web.Response:
    row = await _readable(request, "identity:list_project_tags")
    return json_response(views.project_tags(services(request).url, row["id"], row["tags"]))


async def replace_tags(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:update_project_tags")
    project_id = request.match_info["project_id"]
    await projects.get(svc.identity, project_id)  # 404 before the body's 400
    body = await validated_body(request, schemas.PROJECT_TAGS_UPDATE)
    tags = await projects.set_tags(svc.identity, project_id, check_tags(body["tags"]))
    return json_response(views.project_tags(svc.url, project_id, tags))


async def clear_tags(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:delete_project_tags")
    await projects.set_tags(svc.identity, request.match_info["project_id"], [])
    return web.Response(status=204)


async def check_project_tag(request: web.Request) -> web.Response:
    """GET or HEAD: 204 if the project has the tag, else 404."""
    row = await _readable(request, "identity:get_project_tag")
    tag = request.match_info["tag"]
    if tag not in row["tags"]:
        raise NotFound(f"Could not find project tag: {tag}.")
    return web.Response(status=204)


async def add_tag(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:create_project_tag")
    project_id = request.match_info["project_id"]
    await projects.get(svc.identity, project_id)  # 404 before the tag's 400
    tag = check_tag(request.match_info["tag"])
    await projects.add_tag(svc.identity, project_id, tag)
    location = svc.url(f"{views.PREFIX}/v3/projects/{project_id}/tags/{quote(tag, safe='')}")
    return web.Response(status=201, headers={"Location": location})


async def remove_tag(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:delete_project_tag")
    await projects.remove_tag(
        svc.identity, request.match_info["project_id"], request.match_info["tag"]
    )
    return web.Response(status=204)
