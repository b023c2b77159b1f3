"""Compute API: os-aggregates. Host aggregates are not modelled: the list is always empty."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import context
from mininova.api.responses import json_response


async def list_aggregates(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-aggregates:index")
    return json_response({"aggregates": []})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-aggregates", list_aggregates)
