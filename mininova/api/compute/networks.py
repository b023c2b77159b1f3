"""Compute API: the nova-network proxy os-networks.

Clients without the catalog's network service (older OSC at microversion 2.1) resolve
`--network private` here; the id is the one the network API shows (`/networking`, stored by
migration 0004 with this same value). Like Nova, the proxy is gone (404) from 2.36.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute.views import networks as views
from mininova.api.compute.views.networks import PRIVATE_NETWORK_ID, PRIVATE_NETWORK_NAME
from mininova.api.context import context, mv_at_least
from mininova.api.errors import NotFound
from mininova.api.microversions import V2_36
from mininova.api.responses import json_response

__all__ = ["PRIVATE_NETWORK_ID", "PRIVATE_NETWORK_NAME", "proxy_gone", "setup"]


def proxy_gone(request: web.Request) -> None:
    """The nova-network proxies answer 404 from 2.36."""
    if mv_at_least(request, V2_36):
        raise NotFound("The resource could not be found.")


async def list_networks(request: web.Request) -> web.Response:
    proxy_gone(request)
    return json_response({"networks": [views.private_network(context(request).is_admin)]})


async def show_network(request: web.Request) -> web.Response:
    proxy_gone(request)
    if request.match_info["network_id"] != PRIVATE_NETWORK_ID:
        raise NotFound("Network could not be found.")
    return json_response({"network": views.private_network(context(request).is_admin)})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-networks", list_networks)
    router.add_get(prefix + "/os-networks/{network_id}", show_network)
