"""Glance v2 images: create, show, list, JSON-patch update, delete."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.errors import ApiError, BadRequest, Conflict, Forbidden, OverLimit
from mininova.api.image import listing, views
from mininova.api.image import schemas as check
from mininova.api.responses import json_response
from mininova.api.validation import json_body
from mininova.image import store_ops as ops
from mininova.image.limits import ImageLimitExceeded, ImageLimits

PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
# The core fields a JSON patch may change (everything else is a free-form property).
_PATCHABLE = (
    "name",
    "disk_format",
    "container_format",
    "visibility",
    "min_disk",
    "min_ram",
    "protected",
    "tags",
    "owner",
)


class UnsupportedMediaType(ApiError):
    status = 415


def setup(router: web.UrlDispatcher, v2: str) -> None:
    router.add_get(v2 + "/images", list_images)
    router.add_post(v2 + "/images", create_image)
    router.add_get(v2 + "/images/{image_id}", show_image)
    router.add_patch(v2 + "/images/{image_id}", update_image)
    router.add_delete(v2 + "/images/{image_id}", delete_image)


# -- create / show / list / delete ----------------------------------------------------------


def _create_fields(ctx: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The record fields and free-form properties of a `POST /v2/images` body."""
    fields: dict[str, Any] = {
        "owner": ctx.project_id,
        "visibility": "shared",
        "container_format": "bare",
    }
    properties: dict[str, str] = {}
    for key, value in body.items():
        if key == "name":
            fields["name"] = check.name(value)
        elif key in ("disk_format", "container_format"):
            fields[key] = check.fmt(key, value)
        elif key == "visibility":
            fields["visibility"] = check.visibility(ctx, value)
        elif key in ("min_disk", "min_ram"):
            fields[key] = check.count(key, value)
        elif key == "protected":
            fields["protected"] = check.flag(key, value)
        elif key == "tags":
            fields["tags"] = check.tags(value)
        elif key == "os_hidden":
            if check.flag(key, value):
                raise BadRequest("Hidden images (os_hidden=true) are not supported.")
        elif key == "owner":
            if value != ctx.project_id:
                if not ctx.is_admin:
                    raise Forbidden(f"You are not permitted to create images owned by '{value}'.")
                check.owner(value)
            fields["owner"] = value
        elif key == "id":
            if not check.image_id(value) or not ops.is_uuid(value):
                raise BadRequest("Invalid value for 'id': a UUID is required.")
            fields["image_id"] = str(uuid.UUID(value))
        elif key in ops.RESERVED:
            raise BadRequest(f"Attribute '{key}' is reserved.")
        else:
            properties[key] = check.property_item(key, value)
    check.property_count(properties)
    return fields, properties


async def create_image(request: web.Request) -> web.Response:
    ctx = context(request)
    svc = services(request)
    body = check.check_create_body(await json_body(request))
    fields, properties = _create_fields(ctx, body)
    try:
        row = await ops.create_image(
            svc.store,
            properties=properties,
            image_limits=ImageLimits.from_config(svc.config),
            **fields,
        )
    except ImageLimitExceeded as exc:
        raise OverLimit(exc.message) from None
    return json_response(
        views.image(row),
        status=201,
        headers={"Location": svc.url(f"/image/v2/images/{row['id']}")},
    )


async def show_image(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_visible(svc.store, context(request), request.match_info["image_id"])
    return json_response(views.image(row))


async def list_images(request: web.Request) -> web.Response:
    ctx = context(request)
    query = request.query
    spec = listing.sort_spec(query)
    listing.parse_limit(query)
    listing.check_visibility(query)
    visible = await ops.list_visible(services(request).store, ctx)
    rows = listing.sort(listing.listed(ctx, visible, query), spec)
    page, more = listing.paginate(rows, query)
    params = [(k, v) for k, v in query.items() if k != "marker"]
    return json_response(views.image_list(page, params, more))


async def delete_image(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_modifiable(svc.store, context(request), request.match_info["image_id"])
    await ops.delete_unprotected(svc.store, svc.config, row)
    return web.Response(status=204)


# -- PATCH (JSON patch) ---------------------------------------------------------------------


def _pointer(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    key = path[1:].replace("~1", "/").replace("~0", "~")
    if not key:
        raise BadRequest("Invalid JSON pointer: empty attribute name.")
    return key


def _patch_core(ctx: Any, row: dict[str, Any], key: str, value: Any) -> Any:
    if key == "name":
        return check.name(value)
    if key in ("min_disk", "min_ram"):
        return check.count(key, value)
    if key == "protected":
        return check.flag(key, value)
    if key == "tags":
        return check.tags(value)
    if key == "visibility":
        return check.visibility(ctx, value)
    if key == "owner":
        if not ctx.is_admin:
            raise Forbidden("Attribute 'owner' is read-only.")
        return check.owner(value)
    # disk_format / container_format: only before data is uploaded
    if row["status"] != "queued":
        raise Forbidden(f"Attribute '{key}' can be only replaced for a queued image.")
    return check.fmt(key, value)


def apply_patch(
    ctx: Any, row: dict[str, Any], body: list[Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The image's core fields and properties after a JSON patch (v2.1, or v2.0 style)."""
    image = {k: row[k] for k in _PATCHABLE}
    props = dict(row["properties"])
    for change in body:
        change = check.check_patch_op(change)
        if "op" not in change and len(set(check.PATCH_OPS) & set(change)) == 1:
            # v2.0 style: {"replace": "/name", "value": ...}
            op = next(k for k in check.PATCH_OPS if k in change)
            path = change[op]
        else:
            op, path = change.get("op"), change.get("path")
        if op not in check.PATCH_OPS:
            raise BadRequest(f"Unsupported patch operation: {op!r}")
        key = _pointer(path)
        if op != "remove" and "value" not in change:
            raise BadRequest(f"Operation '{op}' on '{path}' needs a 'value'.")
        value = change.get("value")
        if key in ops.READ_ONLY or key in ("os_hidden",):
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key in image:
            if op == "remove":
                raise Forbidden(f"Attribute '{key}' cannot be removed.")
            image[key] = _patch_core(ctx, row, key, value)
        elif key in ops.RESERVED:
            raise Forbidden(f"Attribute '{key}' is reserved.")
        elif op == "remove":
            if key not in props:
                raise Conflict(f"Property {key} does not exist.")
            del props[key]
        else:
            if op == "replace" and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            props[key] = check.property_item(key, value)
    check.property_count(props)
    return image, props


async def update_image(request: web.Request) -> web.Response:
    ctx = context(request)
    svc = services(request)
    if request.content_type not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {request.content_type!r}; use {PATCH_TYPES[0]}."
        )
    row = await ops.load_modifiable(svc.store, ctx, request.match_info["image_id"])
    body = check.check_patch_body(await json_body(request))
    image, props = apply_patch(ctx, row, body)
    fresh = await ops.save_image(svc.store, row["id"], image, props)
    return json_response(views.image(fresh))
