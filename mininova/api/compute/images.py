"""Compute API: the (deprecated) images proxy over the local Glance records.

As in Nova, the proxy answers 404 from microversion 2.36 (image metadata from 2.39).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest, Forbidden, NotFound, OverLimit
from mininova.api.image import routes as glance
from mininova.api.microversions import V2_36, V2_39
from mininova.api.validation import json_body
from mininova.image import store_ops as ops
from mininova.store.db import dumps
from mininova.timeutil import nova_time, now_iso

_STATUS = {
    "active": "ACTIVE",
    "queued": "SAVING",
    "saving": "SAVING",
    "killed": "ERROR",
    "deleted": "DELETED",
    "pending_delete": "DELETED",
}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}
MAX_IMAGE_META = 128

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


def nova_status(glance_status: str | None) -> str:
    return _STATUS.get(glance_status or "", "UNKNOWN")


def _links(request: web.Request, image_id: str) -> list[dict[str, str]]:
    svc = services(request)
    bookmark_prefix = _PREFIX.rsplit("/", 1)[0]  # /compute
    return [
        {"rel": "self", "href": svc.url(f"{_PREFIX}/images/{image_id}")},
        {"rel": "bookmark", "href": svc.url(f"{bookmark_prefix}/images/{image_id}")},
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": svc.url(f"/image/images/{image_id}"),
        },
    ]


def brief_view(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row.get("name"), "links": _links(request, row["id"])}


def detail_view(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    status = row.get("status")
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row.get("name"),
        "minRam": row.get("min_ram") or 0,
        "minDisk": row.get("min_disk") or 0,
        "metadata": dict(row.get("properties") or {}),
        "created": nova_time(row.get("created_at")),
        "updated": nova_time(row.get("updated_at")),
        "status": nova_status(status),
        "progress": _PROGRESS.get(status or "", 0),
        "links": _links(request, row["id"]),
        "OS-EXT-IMG-SIZE:size": row.get("size"),
    }
    server = view["metadata"].get("instance_uuid")
    if server:
        svc = services(request)
        view["server"] = {
            "id": server,
            "links": [
                {"rel": "self", "href": svc.url(f"{_PREFIX}/servers/{server}")},
                {
                    "rel": "bookmark",
                    "href": svc.url(f"{_PREFIX.rsplit('/', 1)[0]}/servers/{server}"),
                },
            ],
        }
    return view


def _matches(row: dict[str, Any], query: Any) -> bool:
    if "name" in query and row.get("name") != query["name"]:
        return False
    if "status" in query:
        wanted = query["status"].upper()
        if wanted not in (nova_status(row.get("status")), str(row.get("status")).upper()):
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
    store = services(request).store
    rows = [ops.decode_row(r) for r in await store.fetchall("SELECT * FROM images")]
    rows = [r for r in rows if ops.listed_by_default(ctx, r) and _matches(r, request.query)]
    rows = glance._sort(rows, [("created_at", True), ("id", True)])
    page, _ = glance.paginate(rows, request.query)
    view = detail_view if detail else brief_view
    body: dict[str, Any] = {"images": [view(request, r) for r in page]}
    limit = glance.parse_limit(request.query)
    if limit and page and len(page) == limit:
        params = [(k, v) for k, v in request.query.items() if k != "marker"]
        params.append(("marker", page[-1]["id"]))
        path = f"{_PREFIX}/images{'/detail' if detail else ''}?{urlencode(params)}"
        body["images_links"] = [{"rel": "next", "href": services(request).url(path)}]
    return web.json_response(body)


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
    return web.json_response({"image": detail_view(request, row)})


async def delete_image(request: web.Request) -> web.Response:
    _gate(request)
    row = await _load(request)
    svc = services(request)
    if not ops.can_modify(context(request), row):
        raise Forbidden("You are not permitted to delete this image.")
    if row["protected"]:
        raise Forbidden(f"Image {row['id']} is protected and cannot be deleted.")
    await ops.delete_image(svc.store, svc.config, row["id"])
    return web.Response(status=204)


# -- metadata (GET before 2.39; writes need the owner or admin) -----------------------------


async def show_metadata(request: web.Request) -> web.Response:
    _gate(request, metadata=True)
    row = await _load(request)
    return web.json_response({"metadata": dict(row["properties"])})


async def show_meta_item(request: web.Request) -> web.Response:
    _gate(request, metadata=True)
    row = await _load(request)
    key = request.match_info["key"]
    if key not in row["properties"]:
        raise NotFound("Image not found.")
    return web.json_response({"meta": {key: row["properties"][key]}})


def _check_meta(meta: Any) -> dict[str, str]:
    if not isinstance(meta, dict):
        raise BadRequest("Malformed request body: metadata must be an object.")
    out: dict[str, str] = {}
    for key, value in meta.items():
        if not key or len(key) > 255:
            raise BadRequest("Metadata key must be 1 to 255 characters long.")
        if key in ops.RESERVED:
            raise BadRequest(f"Metadata key '{key}' is reserved.")
        if not isinstance(value, str) or len(value) > 255:
            raise BadRequest(f"Invalid value for metadata key '{key}'.")
        out[key] = value
    return out


async def _save_meta(request: web.Request, row: dict[str, Any], props: dict[str, str]) -> None:
    if len(props) > MAX_IMAGE_META:
        raise OverLimit("Quota exceeded for metadata items.")
    await services(request).store.execute(
        "UPDATE images SET properties = ?, updated_at = ? WHERE id = ?",
        (dumps(props), now_iso(), row["id"]),
    )


async def _writable(request: web.Request) -> dict[str, Any]:
    _gate(request, metadata=True)
    row = await _load(request)
    if not ops.can_modify(context(request), row):
        raise Forbidden("You are not permitted to modify this image.")
    return row


async def update_metadata(request: web.Request) -> web.Response:
    row = await _writable(request)
    body = await json_body(request)
    meta = _check_meta(body.get("metadata") if isinstance(body, dict) else None)
    props = {**row["properties"], **meta}
    await _save_meta(request, row, props)
    return web.json_response({"metadata": props})


async def replace_metadata(request: web.Request) -> web.Response:
    row = await _writable(request)
    body = await json_body(request)
    meta = _check_meta(body.get("metadata") if isinstance(body, dict) else None)
    await _save_meta(request, row, meta)
    return web.json_response({"metadata": meta})


async def set_meta_item(request: web.Request) -> web.Response:
    row = await _writable(request)
    key = request.match_info["key"]
    body = await json_body(request)
    meta = body.get("meta") if isinstance(body, dict) else None
    if not isinstance(meta, dict) or len(meta) != 1:
        raise BadRequest("Request body must contain exactly one 'meta' item.")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    item = _check_meta(meta)
    await _save_meta(request, row, {**row["properties"], **item})
    return web.json_response({"meta": item})


async def delete_meta_item(request: web.Request) -> web.Response:
    row = await _writable(request)
    key = request.match_info["key"]
    if key not in row["properties"]:
        raise NotFound(f"Metadata item was not found: {key}")
    props = {k: v for k, v in row["properties"].items() if k != key}
    await _save_meta(request, row, props)
    return web.Response(status=204)
