"""Glance v2 image data: streamed upload (PUT) and download (GET) of `/v2/images/{id}/file`.

This is the one route an agent's capability reaches (`mininova.api.capability`): with a grant
on the request, the image it names is the target, whoever owns it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from mininova.api.capability import CAPABILITY
from mininova.api.context import context, services
from mininova.api.errors import BadRequest, Conflict, Forbidden, OverLimit
from mininova.api.image.images import UnsupportedMediaType
from mininova.image import store_ops as ops
from mininova.image.limits import ImageLimitExceeded, ImageLimits, too_large

CHUNK = 1024 * 1024


def setup(router: web.UrlDispatcher, v2: str) -> None:
    router.add_put(v2 + "/images/{image_id}/file", upload_data)
    router.add_get(v2 + "/images/{image_id}/file", download_data)


def _write_chunk(fh: Any, md5: Any, sha: Any, data: bytearray) -> None:
    md5.update(data)
    sha.update(data)
    fh.write(data)


def _finish_file(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


async def _receive(request: web.Request, tmp: Path, cap: ops.UploadCap) -> tuple[int, str, str]:
    """Stream the body into `tmp`; hashing and disk writes run in a worker thread, one
    ~1 MiB buffer at a time, so neither the loop nor memory sees the whole image. Reading
    stops as soon as the body passes `cap`."""
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
            if size > cap.limit:
                raise cap.refusal(request.content_length or size)
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


async def _target(request: web.Request, modify: bool) -> dict[str, Any]:
    """The image of a data request: visible/modifiable to the user, or named by a capability."""
    # An agent's order: the grant names exactly this path, so no user context applies.
    ctx = None if CAPABILITY in request else context(request)
    store = services(request).store
    return await ops.data_target(store, ctx, request.match_info["image_id"], modify=modify)


async def upload_data(request: web.Request) -> web.Response:
    svc = services(request)
    row = await _target(request, modify=True)
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
    image_limits = ImageLimits.from_config(svc.config)
    declared = request.content_length
    if declared is not None and declared > image_limits.size_cap:
        raise OverLimit(too_large(image_limits.size_cap))

    async def receive(tmp: Path, cap: ops.UploadCap) -> tuple[int, str, str]:
        if declared is not None and declared > cap.limit:
            raise cap.refusal(declared)
        size, checksum, hash_value = await _receive(request, tmp, cap)
        if declared is not None and size != declared:
            raise BadRequest(f"Received {size} bytes, expected {declared}.")
        return size, checksum, hash_value

    try:
        await ops.store_upload(svc.store, svc.config, row, receive, image_limits)
    except ImageLimitExceeded as exc:
        raise OverLimit(exc.message) from None
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
