"""Neutron v2.0 subset, mounted under ``/networking`` (DevStack layout; catalog URL
``<base>/networking``, the API at ``/networking/v2.0``).

One module per resource: `networks`, `subnets`, `ports` (read-only), `quotas` (read-only);
this module adds the version documents. docs/networking.md says what is real and what is a
compatibility view.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import services
from mininova.api.network import (
    floatingips,
    networks,
    ports,
    quotas,
    security_group_rules,
    security_groups,
    subnets,
)
from mininova.api.network.views import versions as views
from mininova.api.responses import json_response

PREFIX = "/networking"
V2 = PREFIX + "/v2.0"


def setup(app: web.Application) -> None:
    """Register the network routes."""
    r = app.router
    r.add_get(PREFIX, versions)
    r.add_get(PREFIX + "/", versions)
    r.add_get(V2, resources)
    r.add_get(V2 + "/", resources)
    networks.setup(r, V2)
    subnets.setup(r, V2)
    ports.setup(r, V2)
    floatingips.setup(r, V2)
    quotas.setup(r, V2)
    security_groups.setup(r, V2)
    security_group_rules.setup(r, V2)


async def versions(request: web.Request) -> web.Response:
    return json_response(views.versions(services(request).url(V2)))


async def resources(request: web.Request) -> web.Response:
    return json_response(views.resources(services(request).url(V2)))
