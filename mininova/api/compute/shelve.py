"""The shelve, shelveOffload and unshelve server actions (Nova's os-shelve).

Policies as Nova's defaults: shelve and unshelve for the server's project or admin,
shelveOffload and unshelve to a host (2.91) for admin only. Each calls one
`mininova.compute.shelve` operation and answers 202 with no body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.compute.schemas import shelve as schemas
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.microversions import V2_77, V2_91, schema_for
from mininova.api.validation import validate
from mininova.compute import shelve as compute_shelve
from mininova.image.limits import ImageLimits
from mininova.store.db import Row


async def shelve(request: web.Request, inst: Row, _body: Any) -> web.Response:
    svc = services(request)
    await compute_shelve.shelve(
        svc.store, svc.conductor, context(request), inst, ImageLimits.from_config(svc.config)
    )
    return web.Response(status=202)


async def shelve_offload(request: web.Request, inst: Row, _body: Any) -> web.Response:
    context(request).require_admin("os_compute_api:os-shelve:shelve_offload")
    svc = services(request)
    await compute_shelve.shelve_offload(svc.store, svc.conductor, context(request), inst)
    return web.Response(status=202)


def _unshelve_request(request: web.Request, body: Any) -> compute_shelve.UnshelveRequest:
    """The body's zone and host at the request's microversion (ignored before 2.77)."""
    req = compute_shelve.UnshelveRequest()
    if not mv_at_least(request, V2_77):
        return req
    validate(
        body,
        schema_for(
            microversion(request),
            [(V2_77, V2_91, schemas.UNSHELVE_V277), (V2_91, None, schemas.UNSHELVE_V291)],
        ),
    )
    if not isinstance(body, dict):
        return req
    if "availability_zone" in body:
        req.zone_given = True
        req.availability_zone = body["availability_zone"]
    if "host" in body:
        context(request).require_admin("os_compute_api:os-shelve:unshelve_to_host")
        req.host = body["host"]
    return req


async def unshelve(request: web.Request, inst: Row, body: Any) -> web.Response:
    svc = services(request)
    req = _unshelve_request(request, body)
    await compute_shelve.unshelve(svc.store, svc.conductor, context(request), inst, req)
    return web.Response(status=202)
