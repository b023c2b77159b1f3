"""Compute API: the nova-network proxy os-floating-ip-pools: the names of the external networks
floating IPs come from (404 from 2.36, as Nova)."""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute.networks import proxy_gone
from mininova.api.context import services
from mininova.api.responses import json_response
from mininova.store import networks


async def list_floating_ip_pools(request: web.Request) -> web.Response:
    proxy_gone(request)
    rows = await networks.list_networks(services(request).store)
    pools = [{"name": row["name"]} for row in rows if row["external"]]
    return json_response({"floating_ip_pools": pools})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-floating-ip-pools", list_floating_ip_pools)
