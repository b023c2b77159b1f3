"""/v3/domains: the single Default domain."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import services
from mininova.api.errors import NotFound
from mininova.api.identity import views
from mininova.api.responses import json_response


async def list_domains(request: web.Request) -> web.Response:
    url = services(request).url
    name = request.query.get("name")
    items = [views.domain(url)] if name in (None, "Default") else []
    return json_response({"domains": items, "links": views.collection_links(url, "domains")})


async def show_domain(request: web.Request) -> web.Response:
    if request.match_info["domain_id"] not in ("default", "Default"):
        raise NotFound(f"Could not find domain: {request.match_info['domain_id']}.")
    return json_response({"domain": views.domain(services(request).url)})
