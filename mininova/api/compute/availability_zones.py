"""Compute API: os-availability-zone (the zones of the compute hosts, plus "internal").

Zones in `compute_hosts.zones`, views in `views/availability_zones.py`.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute import compute_hosts
from mininova.api.compute.views import availability_zones as views
from mininova.api.context import context, services
from mininova.api.responses import json_response


async def list_zones(request: web.Request) -> web.Response:
    svc = services(request)
    zones = await compute_hosts.zones(svc.store, svc.config)
    return json_response({"availabilityZoneInfo": views.zone_list(zones)})


async def list_zones_detail(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-availability-zone:detail")
    svc = services(request)
    zones = await compute_hosts.zones(svc.store, svc.config)
    return json_response({"availabilityZoneInfo": views.zone_detail(zones)})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-availability-zone", list_zones)
    router.add_get(prefix + "/os-availability-zone/detail", list_zones_detail)
