"""Glance v2 image tags: `PUT`/`DELETE /v2/images/{id}/tags/{tag}`."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.image import schemas as check
from mininova.image import store_ops as ops


def setup(router: web.UrlDispatcher, v2: str) -> None:
    router.add_put(v2 + "/images/{image_id}/tags/{tag}", add_tag)
    router.add_delete(v2 + "/images/{image_id}/tags/{tag}", remove_tag)


async def add_tag(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_modifiable(svc.store, context(request), request.match_info["image_id"])
    tags = check.tags([*row["tags"], request.match_info["tag"]])
    await ops.set_tags(svc.store, row["id"], tags)
    return web.Response(status=204)


async def remove_tag(request: web.Request) -> web.Response:
    svc = services(request)
    await ops.remove_tag(
        svc.store, context(request), request.match_info["image_id"], request.match_info["tag"]
    )
    return web.Response(status=204)
