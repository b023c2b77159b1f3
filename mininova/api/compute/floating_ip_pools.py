"""Compute API: the nova-network proxy os-floating-ip-pools (always empty; 404 from 2.36)."""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute.networks import proxy_gone


async def list_floating_ip_pools(request: web.Request) -> web.Response:
    proxy_gone(request)
    return web.json_response({"floating_ip_pools": []})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-floating-ip-pools", list_floating_ip_pools)
