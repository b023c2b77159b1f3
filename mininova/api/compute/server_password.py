"""Compute API: the server password (os-server-password), at every microversion.

* `GET /servers/{id}/os-server-password` -> 200 `{"password": "<stored or "">"}`
* `DELETE /servers/{id}/os-server-password` -> 204: the stored password is cleared.

Project-scoped like every server subresource (another project's server is 404); the owner or
an admin may read and clear it. Storage in `mininova.compute.server_password`.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.responses import json_response
from mininova.compute import server_password as ops


async def show_password(request: web.Request) -> web.Response:
    password = await ops.get_password(
        services(request).store, context(request), request.match_info["server_id"]
    )
    return json_response({"password": password})


async def clear_password(request: web.Request) -> web.Response:
    await ops.clear_password(
        services(request).store, context(request), request.match_info["server_id"]
    )
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    path = prefix + "/servers/{server_id}/os-server-password"
    router.add_get(path, show_password)
    router.add_delete(path, clear_password)
