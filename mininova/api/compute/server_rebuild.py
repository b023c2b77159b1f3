"""The `rebuild` server action: 202 with the server as PUT /servers/{id} shows it, plus
`adminPass` (as Nova does with its default enable_instance_password)."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from aiohttp import web

from mininova.api.compute import servers
from mininova.api.compute.schemas import rebuild as schemas
from mininova.api.compute.server_create import check_ip
from mininova.api.compute.views import servers as views
from mininova.api.context import context, microversion, services
from mininova.api.errors import BadRequest
from mininova.api.responses import json_response
from mininova.api.validation import validate
from mininova.compute import rebuild as compute
from mininova.store.db import Row

_FIELDS = {
    "name": "name",
    "metadata": "metadata",
    "description": "description",
    "key_name": "key_name",
    "user_data": "user_data",
    "hostname": "hostname",
}


def parse_rebuild(args: dict[str, Any]) -> compute.RebuildRequest:
    """The RebuildRequest of a schema-checked `rebuild` object."""
    req = compute.RebuildRequest(image_ref=args["imageRef"])
    for key, attr in _FIELDS.items():
        if key in args:
            setattr(req, attr, args[key])
    if "accessIPv4" in args:
        req.access_ip_v4 = check_ip(args["accessIPv4"], 4, "accessIPv4")
    if "accessIPv6" in args:
        req.access_ip_v6 = check_ip(args["accessIPv6"], 6, "accessIPv6")
    if req.user_data not in (compute.UNSET, None, ""):
        try:
            base64.b64decode(req.user_data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("User data needs to be valid base 64.") from None
    req.preserve_ephemeral = str(args.get("preserve_ephemeral", False)).lower() in (
        "true",
        "1",
        "yes",
        "on",
    )
    return req


async def rebuild(request: web.Request, inst: Row, args: Any) -> web.Response:
    svc, ctx, mv = services(request), context(request), microversion(request)
    validate({"rebuild": args}, schemas.rebuild(mv))
    req = parse_rebuild(args)
    await compute.rebuild_server(svc.store, svc.conductor, ctx, inst, req)
    shown, groups = await servers._show(request, inst["uuid"])
    view = views.update_view(
        svc.base_url,
        shown,
        mv,
        ctx.is_admin,
        servers._host_status(request, shown),
        servers._image_props(request, shown),
        groups,
    )
    view["adminPass"] = args.get("adminPass") or secrets.token_urlsafe(9)
    return json_response({"server": view}, status=202)
