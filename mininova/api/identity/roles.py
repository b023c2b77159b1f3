"""/v3/roles, the grants /v3/projects/{p}/users/{u}/roles/{r} and /v3/role_assignments."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.identity import views
from mininova.api.responses import json_response
from mininova.identity import assignments

# ?filter → the keyword of `assignments.list_assignments`
_ASSIGNMENT_FILTERS = {"user.id": "user_id", "scope.project.id": "project_id", "role.id": "role_id"}


async def list_roles(request: web.Request) -> web.Response:
    svc = services(request)
    rows = await assignments.list_roles(svc.identity, name=request.query.get("name"))
    return json_response(
        {
            "roles": [views.role(svc.url, r) for r in rows],
            "links": views.collection_links(svc.url, "roles"),
        }
    )


async def show_role(request: web.Request) -> web.Response:
    svc = services(request)
    row = await assignments.get_role(svc.identity, request.match_info["role_id"])
    return json_response({"role": views.role(svc.url, row)})


def _grant_ids(request: web.Request) -> tuple[str, str, str]:
    context(request).require_admin("identity:create_grant")
    m = request.match_info
    return m["project_id"], m["user_id"], m["role_id"]


async def grant_role(request: web.Request) -> web.Response:
    await assignments.grant(services(request).identity, *_grant_ids(request))
    return web.Response(status=204)


async def check_grant(request: web.Request) -> web.Response:
    await assignments.check(services(request).identity, *_grant_ids(request))
    return web.Response(status=204)


async def revoke_role(request: web.Request) -> web.Response:
    await assignments.revoke(services(request).identity, *_grant_ids(request))
    return web.Response(status=204)


async def list_role_assignments(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    ctx.require_admin("identity:list_role_assignments")
    q = request.query
    filters = {kw: q[param] for param, kw in _ASSIGNMENT_FILTERS.items() if param in q}
    rows = await assignments.list_assignments(svc.identity, **filters)
    names = "include_names" in q and q["include_names"].lower() not in ("0", "false")
    return json_response(
        {
            "role_assignments": [views.role_assignment(svc.url, r, names=names) for r in rows],
            "links": views.collection_links(svc.url, "role_assignments"),
        }
    )
