"""Compute API: the (deprecated) images proxy over the local Glance records.

As in Nova, the proxy answers 404 from microversion 2.36 (image metadata from 2.39).
Schemas in `schemas/images.py`, views in `views/images.py`, records through
`mininova.image.store_ops`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mininova import quota
from mininova.api.compute.schemas import images as schemas
from mininova.api.compute.views import images as views
from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest, Forbidden, NotFound
from mininova.api.image import listing
from mininova.api.microversions import V2_36, V2_39
from mininova.api.responses import json_response
from mininova.api.validation import json_body
from mininova.image import store_ops as ops
from mininova.timeutil import nova_time

_PREFIX = "/compute/v2.1"


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    global _PREFIX
    _PREFIX = prefix
    router.add_get(prefix + "/images", list_images)
    router.add_get(prefix + "/images/detail", list_images_detail)
    router.add_get(prefix + "/images/{image_id}", show_image)
    router.add_delete(prefix + "/images/{image_id}", delete_image)
    router.add_get(prefix + "/images/{image_id}/metadata", show_metadata)
    router.add_post(prefix + "/images/{image_id}/metadata", update_metadata)
    router.add_put(prefix + "/images/{image_id}/metadata", replace_metadata)
    router.add_get(prefix + "/images/{image_id}/metadata/{key}", show_meta_item)
    router.add_put(prefix + "/images/{image_id}/metadata/{key}", set_meta_item)
    router.add_delete(prefix + "/images/{image_id}/metadata/{key}", delete_meta_item)


def _gate(request: web.Request, metadata: bool = False) -> None:
    if mv_at_least(request, V2_39 if metadata else V2_36):
        raise NotFound("The resource could not be found.")


def _matches(row: dict[str, Any], query: Any) -> bool:
    if "name" in query and row.get("name") != query["name"]:
        return False
    if "status" in query:
        wanted = query["status"].upper()
        if wanted not in (views.nova_status(row.get("status")), str(row.get("status")).upper()):
            return False
    for param, column in (("minRam", "min_ram"), ("minDisk", "min_disk")):
        if param in query:
            try:
                bound = int(query[param])
            except ValueError:
                raise BadRequest(f"Invalid {param} filter: an integer is required.") from None
            if (row.get(column) or 0) < bound:
                return False
    if "server" in query and row["properties"].get("instance_uuid") != query["server"]:
        return False
    if "type" in query and row["properties"].get("image_type", "image") != query["type"]:
        return False
    if "changes-since" in query:
        try:
            since = nova_time(query["changes-since"])
        except ValueError:
            raise BadRequest("Invalid changes-since value.") from None
        if (nova_time(row.get("updated_at")) or "") < (since or ""):
            return False
    return True


async def _list(request: web.Request, detail: bool) -> web.Response:
    _gate(request)
    ctx = context(request)
    svc = services(request)
    query = request.query
    rows = await ops.list_visible(svc.store, ctx)
    rows = [r for r in rows if ops.listed_by_default(ctx, r) and _matches(r, query)]
    rows = listing.sort(rows, [("created_at", True), ("id", True)])
    page, _ = listing.paginate(rows, query)
    limit = listing.parse_limit(query)
    next_href = None
    if limit and page and len(page) == limit:
        params = [(k, v) for k, v in query.items() if k != "marker"]
        params.append(("marker", page[-1]["id"]))
        next_href = svc.url(f"{_PREFIX}/images{'/detail' if detail else ''}?{urlencode(params)}")
    return json_response(views.image_list(page, svc.base_url, _PREFIX, detail, next_href))


async def list_images(request: web.Request) -> web.Response:
    return await _list(request, detail=False)


async def list_images_detail(request: web.Request) -> web.Response:
    return await _list(request, detail=True)


async def _load(request: web.Request) -> dict[str, Any]:
    image_id = request.match_info["image_id"]
    row = await ops.get_image_row(services(request).store, image_id)
    if row is None or not ops.can_see(context(request), row):
        raise NotFound("Image not found.")
    return row


async def show_image(request: web.Request) -> web.Response:
    _gate(request)
    row = await _load(request)
    return json_response({"image": views.detail(row, services(request).base_url, _PREFIX)})


async def delete_image(request: web.Request) -> web.Response:
    _gate(request)
    row = await _load(request)
    svc = services(request)
    if not ops.can_modify(context(request), row):
        raise Forbidden("You are not permitted to delete this image.")
    await ops.delete_unprotected(svc.store, svc.config, row)
    return web.Response(status=204)


# -- metadata (GET before 2.39; writes need the owner or admin) -----------------------------


async def show_metadata(request: web.Request) -> web.Response:
    _gate(request, metadata=True)
    row = await _load(request)
    return json_response({"metadata": dict(row["properties"])})


async def show_meta_item(request: web.Request) -> web.Response:
    _gate(request, metadata=True)
    row = await _load(request)
    key = request.match_info["key"]
    if key not in row["properties"]:
        raise NotFound("Image not found.")
    return json_response({"meta": {key: row["properties"][key]}})


async def _save_meta(
    request: web.Request, row: dict[str, Any], props: dict[str, str], *, check_quota: bool = True
) -> None:
    """Store the image's new properties; as Nova, over the caller's metadata_items quota is
    403 "Image metadata limit exceeded" (deletes are not held to it)."""
    store = services(request).store
    if check_quota and not await quota.metadata_items_allowed(
        store, context(request).project_id, len(props)
    ):
        raise Forbidden("Image metadata limit exceeded")
    await ops.set_properties(store, row["id"], props)


async def _writable(request: web.Request) -> dict[str, Any]:
    _gate(request, metadata=True)
    row = await _load(request)
    if not ops.can_modify(context(request), row):
        raise Forbidden("You are not permitted to modify this image.")
    return row


async def update_metadata(request: web.Request) -> web.Response:
    row = await _writable(request)
    meta = schemas.check_meta(schemas.metadata_of(await json_body(request)))
    props = {**row["properties"], **meta}
    await _save_meta(request, row, props)
    return json_response({"metadata": props})


async def replace_metadata(request: web.Request) -> web.Response:
    row = await _writable(request)
    meta = schemas.check_meta(schemas.metadata_of(await json_body(request)))
    await _save_meta(request, row, meta)
    return json_response({"metadata": meta})


async def set_meta_item(request: web.Request) -> web.Response:
    row = await _writable(request)
    item = schemas.check_meta_item(await json_body(request), request.match_info["key"])
    await _save_meta(request, row, {**row["properties"], **item})
    return json_response({"meta": item})


async def delete_meta_item(request: web.Request) -> web.Response:
    row = await _writable(request)
    key = request.match_info["key"]
    if key not in row["properties"]:
        raise NotFound(f"Metadata item was not found: {key}")
    props = {k: v for k, v in row["properties"].items() if k != key}
    await _save_meta(request, row, props, check_quota=False)
    return web.Response(status=204)
