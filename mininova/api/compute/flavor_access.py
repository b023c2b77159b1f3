"""Compute API: a private flavor's access list (/flavors/{id}/os-flavor-access and the
addTenantAccess / removeTenantAccess actions)."""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute import flavors
from mininova.api.compute.schemas import flavor_access as schemas
from mininova.api.compute.views import flavor_access as views
from mininova.api.context import context, services
from mininova.api.errors import BadRequest
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.errors import Conflict, NotFound
from mininova.store import flavors as repo
from mininova.store.db import Row, Store


async def add_tenant(store: Store, flavor: Row, project_id: str) -> list[str]:
    """Give `project_id` access to a private flavor; the new access list."""
    if flavor["is_public"]:
        raise Conflict("Can not add access to a public flavor.")
    if not await repo.add_access(store, flavor["id"], project_id):
        raise Conflict(
            f"Flavor access already exists for flavor {flavor['id']} and "
            f"project {project_id} combination."
        )
    return await repo.access_list(store, flavor["id"])


async def remove_tenant(store: Store, flavor: Row, project_id: str) -> list[str]:
    """Take `project_id` off a flavor's access list; the new access list."""
    if not await repo.remove_access(store, flavor["id"], project_id):
        raise NotFound(f"Flavor access not found for {flavor['id']} / {project_id} combination.")
    return await repo.access_list(store, flavor["id"])


async def _flavor(request: web.Request) -> Row:
    ctx = context(request)
    flavor_id = request.match_info["flavor_id"]
    return await flavors.find(services(request).store, flavor_id, ctx.project_id, ctx.is_admin)


async def list_access(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-access")
    row = await _flavor(request)
    if row["is_public"]:
        raise NotFound("Access list not available for public flavors.")
    projects = await repo.access_list(services(request).store, row["id"])
    return json_response(views.access_list(row["id"], projects))


async def flavor_action(request: web.Request) -> web.Response:
    body = await validated_body(request, schemas.ACTION)
    action = next(iter(body))
    if action not in schemas.ACTIONS:
        raise BadRequest(f"There is no such action: {action}")
    context(request).require_admin(f"os_compute_api:os-flavor-access:{action}")
    row = await _flavor(request)
    tenant = body[action]["tenant"]
    change = add_tenant if action == "addTenantAccess" else remove_tenant
    projects = await change(services(request).store, row, tenant)
    return json_response(views.access_list(row["id"], projects))


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    one = prefix + "/flavors/{flavor_id}"
    router.add_get(one + "/os-flavor-access", list_access)
    router.add_post(one + "/action", flavor_action)
