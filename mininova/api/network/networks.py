"""Network API: networks. `private` (the hosts' libvirt network) is always there; admins add
external networks (`router:external: true`), stored in `mininova.store.networks`.

Schemas in `schemas/networks.py`, views in `views/networks.py`, records in `model.py`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.network import listing, model
from mininova.api.network.common import body_of, owner
from mininova.api.network.errors import (
    NeutronFault,
    invalid_input,
    neutron_handler,
    not_found,
    policy_denied,
)
from mininova.api.network.schemas import networks as schemas
from mininova.api.network.views import networks as views
from mininova.api.responses import json_response
from mininova.store import floating_ips
from mininova.store import networks as repo
from mininova.timeutil import now_iso


def _not_found(network_id: str) -> NeutronFault:
    return not_found("Network", network_id)


async def find(request: web.Request, network_id: str) -> dict[str, Any]:
    """The network record the caller may see; 404 NetworkNotFound otherwise."""
    svc = services(request)
    for record in await model.visible_networks(svc.store, context(request)):
        if record["id"] == network_id:
            return record
    raise _not_found(network_id)


@neutron_handler
async def list_networks(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.ATTRIBUTES)
    items = [views.network(r, ctx.is_admin) for r in await model.visible_networks(svc.store, ctx)]
    return json_response(listing.select(request, items, query, "networks", _not_found))


@neutron_handler
async def show_network(request: web.Request) -> web.Response:
    record = await find(request, request.match_info["network_id"])
    view = views.network(record, context(request).is_admin)
    return json_response({"network": listing.only(view, listing.fields_of(request))})


@neutron_handler
async def create_network(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(request, "network", schemas.ATTRIBUTES, schemas.CREATE)
    if not ctx.is_admin:
        raise policy_denied("rule:create_network and rule:create_network:router:external")
    if not given.get("router:external", False):
        raise invalid_input(
            "servers attach only to the shared network 'private'; a new network must be "
            "external (router:external true)"
        )
    now = now_iso()
    values = {
        "id": str(uuid.uuid4()),
        "name": given.get("name", ""),
        "project_id": owner(ctx.project_id, given, ctx.is_admin),
        "description": given.get("description", ""),
        "admin_state_up": int(given.get("admin_state_up", True)),
        "shared": int(given.get("shared", False)),
        "external": 1,
        "mtu": int(given.get("mtu", model.MTU)),
        "created_at": now,
        "updated_at": now,
    }
    await repo.insert_network(svc.store, values)
    record = await find(request, values["id"])
    return json_response({"network": views.network(record, ctx.is_admin)}, status=201)


@neutron_handler
async def delete_network(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    record = await find(request, request.match_info["network_id"])
    if not ctx.is_admin:
        raise policy_denied("rule:delete_network")
    if record["private"]:
        raise NeutronFault(
            "NetworkInUse",
            409,
            f"Unable to complete operation on network {record['id']}. The network is the "
            "compute hosts' own and cannot be deleted.",
        )
    if await floating_ips.count_on_network(svc.store, record["id"]):
        raise NeutronFault(
            "NetworkInUse",
            409,
            f"Unable to complete operation on network {record['id']}. There are one or more "
            "floating IPs still in use on the network.",
        )
    # No router or port uses an external network, so its subnets go with it, as Neutron
    # deletes the subnets of a network without ports.
    await repo.delete_network(svc.store, record["id"])
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/networks", list_networks)
    router.add_post(prefix + "/networks", create_network)
    router.add_get(prefix + "/networks/{network_id}", show_network)
    router.add_delete(prefix + "/networks/{network_id}", delete_network)
