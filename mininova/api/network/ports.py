"""Network API: ports, read-only. One port per server NIC, derived from the servers the caller
may see (`model.visible_ports`); creating, updating or deleting ports is not offered.

Views in `views/ports.py`.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.network import listing, model
from mininova.api.network.errors import NeutronFault, neutron_handler, not_found
from mininova.api.network.views import ports as views
from mininova.api.responses import json_response


def _not_found(port_id: str) -> NeutronFault:
    return not_found("Port", port_id)


@neutron_handler
async def list_ports(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.ATTRIBUTES)
    items = [views.port(r, ctx.is_admin) for r in await model.visible_ports(svc.store, ctx)]
    return json_response(listing.select(request, items, query, "ports", _not_found))


@neutron_handler
async def show_port(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    port_id = request.match_info["port_id"]
    for record in await model.visible_ports(svc.store, ctx):
        if record["id"] == port_id:
            view = views.port(record, ctx.is_admin)
            return json_response({"port": listing.only(view, listing.fields_of(request))})
    raise _not_found(port_id)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/ports", list_ports)
    router.add_get(prefix + "/ports/{port_id}", show_port)
