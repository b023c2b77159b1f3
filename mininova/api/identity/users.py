"""/v3/users: list, show, create, update, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.errors import BadRequest
from mininova.api.identity import schemas, views
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.identity import users


async def list_users(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:list_users")
    rows = await users.list_users(svc.identity, name=request.query.get("name"))
    return json_response(
        {
            "users": [views.user(svc.url, r) for r in rows],
            "links": views.collection_links(svc.url, "users"),
        }
    )


async def show_user(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    row = await users.get(svc.identity, request.match_info["user_id"])
    if row["id"] != ctx.user_id:
        ctx.require_admin("identity:get_user")
    return json_response({"user": views.user(svc.url, row)})


async def create_user(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:create_user")
    body = (await validated_body(request, schemas.USER_CREATE))["user"]
    row = await users.create(
        svc.identity,
        name=body["name"],
        password=body.get("password"),
        default_project_id=body.get("default_project_id"),
        email=body.get("email"),
        enabled=body.get("enabled", True),
    )
    return json_response({"user": views.user(svc.url, row)}, status=201)


def _user_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, nullable in (("name", False), ("email", True), ("default_project_id", True)):
        if key in body:
            value = body[key]
            if not (isinstance(value, str) or (nullable and value is None)):
                raise BadRequest(f"Invalid input for field '{key}'.")
            changes[key] = value
    if "enabled" in body:
        changes["enabled"] = bool(body["enabled"])
    if isinstance(body.get("password"), str):
        changes["password"] = body["password"]
    return changes


async def update_user(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:update_user")
    user_id = request.match_info["user_id"]
    await users.get(svc.identity, user_id)  # 404 before the body's 400
    body = (await validated_body(request, schemas.USER_UPDATE))["user"]
    row = await users.update(svc.identity, user_id, _user_changes(body))
    return json_response({"user": views.user(svc.url, row)})


async def delete_user(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:delete_user")
    await users.delete(svc.identity, request.match_info["user_id"])
    return web.Response(status=204)
