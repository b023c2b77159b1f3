"""Compute API: Nova's admin-only `injectNetworkInfo` server action.

`{"injectNetworkInfo": null}` on `POST /servers/{id}/action` (admin) -> 202, no body. Nova
casts the instance's network info to its host again and records no instance action; here
the conductor pushes the host's whole network state (`network_sync`: DHCP reservation,
firewall rules) again, the same push a network change makes. A server on no host has
nothing to re-inject (still 202).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.compute import api as compute
from mininova.store.db import Row


async def inject_network_info(request: web.Request, inst: Row, _body: Any) -> web.Response:
    ctx = context(request)
    ctx.require_admin("os_compute_api:os-admin-actions:inject_network_info")
    compute.check_locked(ctx, inst)
    if inst["host"]:
        services(request).conductor.sync_network([inst["host"]])
    return web.Response(status=202)
