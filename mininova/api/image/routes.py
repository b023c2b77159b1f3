"""Glance v2 subset, mounted under ``/image`` (DevStack layout; catalog URL ``<base>/image``).

One module per resource: `images` (CRUD and JSON-patch updates), `image_data` (streamed
upload and download), `image_tags`; this module adds the versions document.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import services
from mininova.api.image import image_data, image_tags, images, views
from mininova.api.responses import json_response

PREFIX = "/image"
V2 = PREFIX + "/v2"
_VERSIONS = (
    "2.17",
    "2.16",
    "2.15",
    "2.14",
    "2.13",
    "2.12",
    "2.11",
    "2.10",
    "2.9",
    "2.8",
    "2.7",
    "2.6",
    "2.5",
    "2.4",
    "2.3",
    "2.2",
    "2.1",
    "2.0",
)


def setup(app: web.Application) -> None:
    """Register the image routes."""
    r = app.router
    r.add_get(PREFIX, versions)
    r.add_get(PREFIX + "/", versions)
    images.setup(r, V2)
    image_data.setup(r, V2)
    image_tags.setup(r, V2)


async def versions(request: web.Request) -> web.Response:
    body = views.versions(services(request).url(V2 + "/"), _VERSIONS)
    return json_response(body, status=300)
