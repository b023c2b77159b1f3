"""Glance v2 subset, mounted under ``/image`` (DevStack layout; catalog URL ``<base>/image``).

Versions document, images CRUD, JSON-patch updates, tags, and streamed data upload/download.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mininova.api import pagination
from mininova.api.capability import CAPABILITY
from mininova.api.context import context, services
from mininova.api.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound, OverLimit
from mininova.api.validation import json_body
from mininova.image import store_ops as ops
from mininova.store.db import dumps
from mininova.timeutil import now_iso

PREFIX = "/image"
V2 = PREFIX + "/v2"
CHUNK = 1024 * 1024
MAX_LIMIT = 1000
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
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


class UnsupportedMediaType(ApiError):
    status = 415


def setup(app: web.Application) -> None:
    """Register the image routes."""
    r = app.router
    r.add_get(PREFIX, versions)
    r.add_get(PREFIX + "/", versions)
    r.add_get(V2 + "/images", list_images)
    r.add_post(V2 + "/images", create_image)
    r.add_get(V2 + "/images/{image_id}", show_image)
    r.add_patch(V2 + "/images/{image_id}", update_image)
    r.add_delete(V2 + "/images/{image_id}", delete_image)
    r.add_put(V2 + "/images/{image_id}/file", upload_data)
    r.add_get(V2 + "/images/{image_id}/file", download_data)
    r.add_put(V2 + "/images/{image_id}/tags/{tag}", add_tag)
    r.add_delete(V2 + "/images/{image_id}/tags/{tag}", remove_tag)


# -- discovery ------------------------------------------------------------------------------


async def versions(request: web.Request) -> web.Response:
    href = services(request).url(V2 + "/")
    body = {
        "versions": [
            {
                "id": f"v{v}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for i, v in enumerate(_VERSIONS)
        ]
    }
    return web.json_response(body, status=300)


# -- validation -----------------------------------------------------------------------------


def _check_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 255):
        raise BadRequest("Invalid value for 'name': a string of at most 255 characters.")
    return value


def _check_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31:
        raise BadRequest(f"Invalid value for '{key}': a non-negative integer is required.")
    return value


def _check_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid value for '{key}': a boolean is required.")
    return value


def _check_enum(key: str, value: Any, allowed: tuple[str, ...], nullable: bool = True) -> Any:
    if value is None and nullable:
        return None
    if value not in allowed:
        raise BadRequest(
            f"Invalid value '{value}' for '{key}': expected one of {', '.join(allowed)}."
        )
    return value


def _check_tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(t, str) and 0 < len(t) <= 255 for t in value
    ):
        raise BadRequest("Invalid value for 'tags': a list of non-empty strings is required.")
    if len(value) > 128:
        raise OverLimit("Maximum number of tags exceeded.")
    return list(dict.fromkeys(value))


def _check_visibility(ctx: Any, value: Any) -> str:
    _check_enum("visibility", value, ops.VISIBILITIES, nullable=False)
    if value == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to publicize images (visibility 'public').")
    return value


def _check_property(key: str, value: Any) -> str:
    if not key or len(key) > 255:
        raise BadRequest("Property names must be 1 to 255 characters long.")
    if not isinstance(value, str):
        raise BadRequest(f"Invalid value for property '{key}': a string is required.")
    if len(value) > 65535:
        raise BadRequest(f"Value of property '{key}' is too long.")
    return value


# -- create / show / list / delete ----------------------------------------------------------


async def create_image(request: web.Request) -> web.Response:
    ctx = context(request)
    svc = services(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    fields: dict[str, Any] = {
        "owner": ctx.project_id,
        "visibility": "shared",
        "container_format": "bare",
    }
    properties: dict[str, str] = {}
    for key, value in body.items():
        if key == "name":
            fields["name"] = _check_name(value)
        elif key == "disk_format":
            fields["disk_format"] = _check_enum(key, value, ops.DISK_FORMATS)
        elif key == "container_format":
            fields["container_format"] = _check_enum(key, value, ops.CONTAINER_FORMATS)
        elif key == "visibility":
            fields["visibility"] = _check_visibility(ctx, value)
        elif key in ("min_disk", "min_ram"):
            fields[key] = _check_int(key, value)
        elif key == "protected":
            fields["protected"] = _check_bool(key, value)
        elif key == "tags":
            fields["tags"] = _check_tags(value)
        elif key == "os_hidden":
            if _check_bool(key, value):
                raise BadRequest("Hidden images (os_hidden=true) are not supported.")
        elif key == "owner":
            if value != ctx.project_id:
                if not ctx.is_admin:
                    raise Forbidden(f"You are not permitted to create images owned by '{value}'.")
                if not isinstance(value, str) or not value:
                    raise BadRequest("Invalid value for 'owner'.")
            fields["owner"] = value
        elif key == "id":
            if not isinstance(value, str) or not ops.is_uuid(value):
                raise BadRequest("Invalid value for 'id': a UUID is required.")
            fields["image_id"] = str(uuid.UUID(value))
        elif key in ops.RESERVED:
            raise BadRequest(f"Attribute '{key}' is reserved.")
        else:
            properties[key] = _check_property(key, value)
    if len(properties) > 128:
        raise OverLimit("Maximum number of image properties exceeded.")
    image_id = fields.get("image_id")
    if image_id and await ops.get_image_row(svc.store, image_id) is not None:
        raise Conflict(f"Image with identifier {image_id} already exists!")
    row = await ops.create_image_record(svc.store, properties=properties, **fields)
    view = ops.glance_view(row)
    return web.json_response(
        view, status=201, headers={"Location": svc.url(f"{V2}/images/{row['id']}")}
    )


async def show_image(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_visible(svc.store, context(request), request.match_info["image_id"])
    return web.json_response(ops.glance_view(row))


def _in_values(text: str) -> set[str]:
    if text.startswith("in:"):
        return {v.strip().strip('"') for v in text[3:].split(",") if v.strip()}
    return {text}


_SORT_KEYS = (
    "created_at",
    "updated_at",
    "name",
    "id",
    "status",
    "size",
    "disk_format",
    "container_format",
    "visibility",
    "min_disk",
    "min_ram",
)
_IGNORED_PARAMS = frozenset(
    {"limit", "marker", "sort_key", "sort_dir", "sort", "member_status", "os_hidden"}
)


def _sort_spec(query: Any) -> list[tuple[str, bool]]:
    """[(key, descending)] from `sort=k:dir,...` or `sort_key`/`sort_dir` (default created_at
    desc), always ending with id as a tie-breaker."""
    spec: list[tuple[str, bool]] = []
    if "sort" in query:
        for part in query["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, (direction or "desc") == "desc"))
            if direction not in ("", "asc", "desc"):
                raise BadRequest(f"Invalid sort direction: {direction}")
    else:
        keys = query.getall("sort_key", []) or ["created_at"]
        dirs = query.getall("sort_dir", [])
        for i, key in enumerate(keys):
            direction = dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort direction: {direction}")
            spec.append((key, direction == "desc"))
    for key, _ in spec:
        if key not in _SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}")
    if all(key != "id" for key, _ in spec):
        spec.append(("id", spec[0][1]))
    return spec


def _sort(rows: list[dict[str, Any]], spec: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    for key, desc in reversed(spec):
        # None sorts first ascending, like SQL NULLs in SQLite.
        rows.sort(
            key=lambda r, k=key: (
                (r.get(k) is not None, r.get(k) or 0)
                if k in ("size", "min_disk", "min_ram")
                else (r.get(k) is not None, str(r.get(k) or ""))
            ),
            reverse=desc,
        )
    return rows


def _matches(row: dict[str, Any], query: Any) -> bool:
    for key in ("name", "status", "id", "owner", "disk_format", "container_format"):
        if key in query and str(row.get(key)) not in _in_values(query[key]):
            return False
    for tag in query.getall("tag", []):
        if tag not in row["tags"]:
            return False
    for key, value in (("size_min", "ge"), ("size_max", "le")):
        if key in query:
            try:
                bound = int(query[key])
            except ValueError:
                raise BadRequest(f"Invalid value for {key}.") from None
            size = row.get("size")
            if size is None or (size < bound if value == "ge" else size > bound):
                return False
    if "protected" in query:
        wanted = query["protected"].lower()
        if wanted not in ("true", "false"):
            raise BadRequest("Invalid value for protected: true or false expected.")
        if row["protected"] != (wanted == "true"):
            return False
    if query.get("os_hidden", "false").lower() == "true":
        return False
    known = {
        "name",
        "status",
        "id",
        "owner",
        "disk_format",
        "container_format",
        "tag",
        "size_min",
        "size_max",
        "protected",
        "visibility",
    } | _IGNORED_PARAMS
    for key in query:
        if key not in known and row["properties"].get(key) not in _in_values(query[key]):
            return False  # Glance treats any other parameter as a property filter
    return True


async def visible_images(store: Any, ctx: Any, query: Any) -> list[dict[str, Any]]:
    """Images the caller may list, filtered (Glance semantics) but not paginated or sorted."""
    visibility = query.get("visibility")
    if visibility is not None and visibility != "all" and visibility not in ops.VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {visibility}")
    rows = [ops.decode_row(r) for r in await store.fetchall("SELECT * FROM images")]
    out = []
    for row in rows:
        if visibility is None:
            if not ops.listed_by_default(ctx, row):
                continue
        elif not ops.can_see(ctx, row) or (visibility != "all" and row["visibility"] != visibility):
            continue
        if _matches(row, query):
            out.append(row)
    return out


def parse_limit(query: Any) -> int | None:
    return pagination.parse_limit(query, MAX_LIMIT)


def paginate(
    rows: list[dict[str, Any]], query: Any, default_limit: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Apply marker and limit to sorted rows; returns (page, more_remain)."""
    marker = query.get("marker")
    if marker is not None:
        index = next((i for i, r in enumerate(rows) if r["id"] == marker), None)
        if index is None:
            raise BadRequest(f"marker [{marker}] not found")
        rows = rows[index + 1 :]
    limit = parse_limit(query)
    if limit is None:
        limit = default_limit
    if limit is None:
        return rows, False
    return rows[:limit], len(rows) > limit


async def list_images(request: web.Request) -> web.Response:
    ctx = context(request)
    store = services(request).store
    query = request.query
    spec = _sort_spec(query)
    parse_limit(query)
    rows = _sort(await visible_images(store, ctx, query), spec)
    page, more = paginate(rows, query)
    body: dict[str, Any] = {
        "images": [ops.glance_view(r) for r in page],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    params = [(k, v) for k, v in query.items() if k != "marker"]
    if params:
        body["first"] = "/v2/images?" + urlencode(params)
    if more and page:
        body["next"] = "/v2/images?" + urlencode(params + [("marker", page[-1]["id"])])
    return web.json_response(body)


async def delete_image(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_modifiable(svc.store, context(request), request.match_info["image_id"])
    if row["protected"]:
        raise Forbidden(f"Image {row['id']} is protected and cannot be deleted.")
    await ops.delete_image(svc.store, svc.config, row["id"])
    return web.Response(status=204)


# -- PATCH (JSON patch) ---------------------------------------------------------------------


def _pointer(path: Any) -> str:
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
        raise BadRequest(f"Invalid JSON pointer for this resource: '{path}'")
    key = path[1:].replace("~1", "/").replace("~0", "~")
    if not key:
        raise BadRequest("Invalid JSON pointer: empty attribute name.")
    return key


async def update_image(request: web.Request) -> web.Response:
    ctx = context(request)
    svc = services(request)
    if request.content_type not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {request.content_type!r}; use {PATCH_TYPES[0]}."
        )
    row = await ops.load_modifiable(svc.store, ctx, request.match_info["image_id"])
    body = await json_body(request)
    if not isinstance(body, list):
        raise BadRequest("The request body must be a JSON array of patch operations.")
    image = {
        k: row[k]
        for k in (
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
    }
    props = dict(row["properties"])
    for change in body:
        if not isinstance(change, dict):
            raise BadRequest("Each patch operation must be a JSON object.")
        if "op" not in change and len({"add", "replace", "remove"} & set(change)) == 1:
            # v2.0 style: {"replace": "/name", "value": ...}
            op = next(k for k in ("add", "replace", "remove") if k in change)
            path = change[op]
        else:
            op, path = change.get("op"), change.get("path")
        if op not in ("add", "replace", "remove"):
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
            props[key] = _check_property(key, value)
    if len(props) > 128:
        raise OverLimit("Maximum number of image properties exceeded.")
    await svc.store.execute(
        "UPDATE images SET name = ?, disk_format = ?, container_format = ?, visibility = ?,"
        " min_disk = ?, min_ram = ?, protected = ?, tags = ?, owner = ?, properties = ?,"
        " updated_at = ? WHERE id = ?",
        (
            image["name"],
            image["disk_format"],
            image["container_format"],
            image["visibility"],
            image["min_disk"],
            image["min_ram"],
            int(image["protected"]),
            json.dumps(image["tags"]),
            image["owner"],
            dumps(props),
            now_iso(),
            row["id"],
        ),
    )
    fresh = await ops.get_image_row(svc.store, row["id"])
    if fresh is None:
        raise NotFound(f"No image found with ID {row['id']}")
    return web.json_response(ops.glance_view(fresh))


def _patch_core(ctx: Any, row: dict[str, Any], key: str, value: Any) -> Any:
    if key == "name":
        return _check_name(value)
    if key in ("min_disk", "min_ram"):
        return _check_int(key, value)
    if key == "protected":
        return _check_bool(key, value)
    if key == "tags":
        return _check_tags(value)
    if key == "visibility":
        return _check_visibility(ctx, value)
    if key == "owner":
        if not ctx.is_admin:
            raise Forbidden("Attribute 'owner' is read-only.")
        if not isinstance(value, str) or not value:
            raise BadRequest("Invalid value for 'owner'.")
        return value
    # disk_format / container_format: only before data is uploaded
    if row["status"] != "queued":
        raise Forbidden(f"Attribute '{key}' can be only replaced for a queued image.")
    allowed = ops.DISK_FORMATS if key == "disk_format" else ops.CONTAINER_FORMATS
    return _check_enum(key, value, allowed)


async def add_tag(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_modifiable(svc.store, context(request), request.match_info["image_id"])
    tag = request.match_info["tag"]
    tags = _check_tags([*row["tags"], tag])
    await svc.store.execute(
        "UPDATE images SET tags = ?, updated_at = ? WHERE id = ?",
        (json.dumps(tags), now_iso(), row["id"]),
    )
    return web.Response(status=204)


async def remove_tag(request: web.Request) -> web.Response:
    svc = services(request)
    row = await ops.load_modifiable(svc.store, context(request), request.match_info["image_id"])
    tag = request.match_info["tag"]
    if tag not in row["tags"]:
        raise NotFound(f"Tag {tag} not found.")
    tags = [t for t in row["tags"] if t != tag]
    await svc.store.execute(
        "UPDATE images SET tags = ?, updated_at = ? WHERE id = ?",
        (json.dumps(tags), now_iso(), row["id"]),
    )
    return web.Response(status=204)


# -- data -----------------------------------------------------------------------------------


def _write_chunk(fh: Any, md5: Any, sha: Any, data: bytearray) -> None:
    md5.update(data)
    sha.update(data)
    fh.write(data)


def _finish_file(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


async def _receive(request: web.Request, tmp: Path, cap: int) -> tuple[int, str, str]:
    """Stream the body into `tmp`; hashing and disk writes run in a worker thread, one
    ~1 MiB buffer at a time, so neither the loop nor memory sees the whole image."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha512()
    size = 0
    fh = await asyncio.to_thread(open, tmp, "wb")
    try:
        buf = bytearray()
        while True:
            chunk = await request.content.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                raise OverLimit(f"Image exceeds the storage quota of {cap} bytes.")
            buf += chunk
            if len(buf) >= CHUNK:
                data, buf = buf, bytearray()
                await asyncio.to_thread(_write_chunk, fh, md5, sha, data)
        if buf:
            await asyncio.to_thread(_write_chunk, fh, md5, sha, buf)
        await asyncio.to_thread(_finish_file, fh)
    finally:
        await asyncio.shield(asyncio.to_thread(fh.close))
    return size, md5.hexdigest(), sha.hexdigest()


async def _abort_upload(store: Any, image_id: str, tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await asyncio.to_thread(tmp.unlink)
    await ops.set_image_status(store, image_id, "queued", expect="saving")


async def _target(request: web.Request, modify: bool) -> dict[str, Any]:
    """The image of a data request: visible/modifiable to the user, or named by a capability."""
    store, image_id = services(request).store, request.match_info["image_id"]
    if CAPABILITY in request:  # an agent's order: the grant names exactly this path
        row = await ops.get_image_row(store, image_id)
        if row is None:
            raise NotFound(f"No image found with ID {image_id}")
        return row
    if modify:
        return await ops.load_modifiable(store, context(request), image_id)
    return await ops.load_visible(store, context(request), image_id)


async def upload_data(request: web.Request) -> web.Response:
    svc = services(request)
    store, config = svc.store, svc.config
    row = await _target(request, modify=True)
    image_id = row["id"]
    if request.content_type != "application/octet-stream":
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {request.content_type!r}; use application/octet-stream."
        )
    if row["status"] != "queued":
        raise Conflict(f"Image status transition from {row['status']} to saving is not allowed")
    if not row["disk_format"] or not row["container_format"]:
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data."
        )
    cap = ops.size_cap(config)
    declared = request.content_length
    if declared is not None and declared > cap:
        raise OverLimit(f"Image exceeds the storage quota of {cap} bytes.")
    if not await ops.set_image_status(store, image_id, "saving", expect="queued"):
        raise Conflict("Image status transition from saving to saving is not allowed")
    directory = ops.images_dir(config)
    final = ops.image_path(config, image_id)
    tmp = directory / f".{image_id}.{uuid.uuid4().hex}.part"
    try:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        size, checksum, hash_value = await _receive(request, tmp, cap)
        if declared is not None and size != declared:
            raise BadRequest(f"Received {size} bytes, expected {declared}.")
        virtual_size = await ops.qemu_virtual_size(tmp, row["disk_format"], size)
        await asyncio.to_thread(os.replace, tmp, final)
    except BaseException:
        await asyncio.shield(_abort_upload(store, image_id, tmp))
        raise
    changed = await store.execute(
        "UPDATE images SET status = 'active', size = ?, virtual_size = ?, checksum = ?,"
        " os_hash_algo = 'sha512', os_hash_value = ?, updated_at = ?"
        " WHERE id = ? AND status = 'saving'",
        (size, virtual_size, checksum, hash_value, now_iso(), image_id),
    )
    if not changed:  # deleted (or reset) while uploading
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(final.unlink)
        raise Conflict(f"Image {image_id} was deleted during the upload.")
    return web.Response(status=204)


async def download_data(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    row = await _target(request, modify=False)
    if row["status"] == "deactivated":
        raise Forbidden(
            "The requested image has been deactivated. Image data download is forbidden."
        )
    path = ops.image_path(svc.config, row["id"])
    if row["status"] != "active" or not await asyncio.to_thread(path.is_file):
        return web.Response(status=204)
    headers = {"Content-Type": "application/octet-stream"}
    if row["checksum"]:
        headers["Content-MD5"] = row["checksum"]
    return web.FileResponse(path, chunk_size=256 * 1024, headers=headers)
