"""Keystone discovery: GET /identity (300, the versions list) and GET /identity/v3."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import services
from mininova.api.identity import views
from mininova.api.responses import json_response


async def versions(request: web.Request) -> web.Response:
    doc = views.version(services(request).url)
    return json_response({"versions": {"values": [doc]}}, status=300)


async def version_v3(request: web.Request) -> web.Response:
    return json_response({"version": views.version(services(request).url)})
