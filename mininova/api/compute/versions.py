"""Compute version discovery: GET /compute/ and GET /compute/v2.1 (unauthenticated)."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import SERVICES
from mininova.api.microversion import MAX_VERSION, MIN_VERSION, fmt
from mininova.api.responses import json_response


def _v20(base: str) -> dict:
    return {
        "id": "v2.0",
        "status": "DEPRECATED",
        "version": "",
        "min_version": "",
        "updated": "2025-07-04T12:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2/"}],
    }


def _v21(base: str) -> dict:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": fmt(MAX_VERSION),
        "min_version": fmt(MIN_VERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
    }


async def versions(request: web.Request) -> web.Response:
    base = request.config_dict[SERVICES].base_url
    return json_response({"versions": [_v20(base), _v21(base)]})


async def version_v21(request: web.Request) -> web.Response:
    base = request.config_dict[SERVICES].base_url
    doc = _v21(base)
    doc["links"].append(
        {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}
    )
    doc["media-types"] = [
        {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
    ]
    return json_response({"version": doc})


async def version_v20(request: web.Request) -> web.Response:
    base = request.config_dict[SERVICES].base_url
    return json_response({"version": _v20(base)})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get("/compute", versions)
    router.add_get("/compute/", versions)
    router.add_get(prefix, version_v21)
    router.add_get(prefix + "/", version_v21)
    router.add_get("/compute/v2", version_v20)
    router.add_get("/compute/v2/", version_v20)
