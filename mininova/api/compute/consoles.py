"""Compute API: remote consoles (noVNC).

* `POST /servers/{id}/remote-consoles` (2.6+) `{"remote_console": {"protocol": "vnc",
  "type": "novnc"}}` -> 200 `{"remote_console": {"protocol", "type", "url"}}`
* the legacy action `{"os-getVNCConsole": {"type": "novnc"}}` on `POST /servers/{id}/action`,
  accepted at any microversion (the SDK's `get_server_console_url` sends it at 2.100) ->
  `{"console": {"type", "url"}}`. `server_actions` dispatches it to `get_vnc_console`.

The URL points at the controller's own console page: `<public url>/ui/console.html?token=T`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.microversions import V2_6
from mininova.api.responses import json_response
from mininova.api.validation import json_body
from mininova.compute import api as compute
from mininova.store.db import Row

PROTOCOLS = {
    "vnc": ("novnc", "xvpvnc"),
    "spice": ("spice-html5", "spice-direct"),
    "rdp": ("rdp-html5",),
    "serial": ("serial",),
    "mks": ("webmks",),
}
SUPPORTED = {("vnc", "novnc")}


def console_url(base_url: str, token: str) -> str:
    return f"{base_url}/ui/console.html?token={quote(token, safe='')}"


async def _issue(request: web.Request, server_row: Row, console_type: str) -> str:
    svc = services(request)
    token = await compute.console_url_token(svc.consoleauth, server_row, console_type)
    return console_url(svc.base_url, token)


async def create_remote_console(request: web.Request) -> web.Response:
    if not mv_at_least(request, V2_6):
        raise NotFound("The resource could not be found.")
    body = await json_body(request)  # bounded by max_request_body_size, read to its end
    spec = body.get("remote_console") if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise BadRequest("Invalid input for field/attribute remote_console.")
    protocol, ctype = spec.get("protocol"), spec.get("type")
    if protocol not in PROTOCOLS:
        raise BadRequest(f"Invalid input for field/attribute protocol. Value: {protocol}.")
    if ctype not in PROTOCOLS[protocol]:
        raise BadRequest(f"Invalid input for field/attribute type. Value: {ctype}.")
    server_row = await compute.get_server(
        services(request).store, context(request), request.match_info["server_id"]
    )
    if (protocol, ctype) not in SUPPORTED:
        raise BadRequest(f"Unavailable console type {ctype}.")
    url = await _issue(request, server_row, ctype)
    return json_response({"remote_console": {"protocol": protocol, "type": ctype, "url": url}})


async def get_vnc_console(
    request: web.Request, server_row: Row, body: dict[str, Any]
) -> web.Response:
    """The legacy `os-getVNCConsole` server action, at any microversion.

    `server_row` is the caller's (already project-checked) `instances` row; `body` is the whole
    action body `{"os-getVNCConsole": {"type": "novnc"}}` (the inner object is accepted too).
    """
    spec = body.get("os-getVNCConsole", body) if isinstance(body, dict) else None
    if not isinstance(spec, dict):
        raise BadRequest("Invalid input for field/attribute os-getVNCConsole.")
    ctype = spec.get("type")
    if ctype not in PROTOCOLS["vnc"]:
        raise BadRequest(f"Invalid input for field/attribute type. Value: {ctype}.")
    if ctype != "novnc":
        raise BadRequest(f"Unavailable console type {ctype}.")
    url = await _issue(request, server_row, ctype)
    return json_response({"console": {"type": ctype, "url": url}})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    router.add_post(prefix + "/servers/{server_id}/remote-consoles", create_remote_console)
