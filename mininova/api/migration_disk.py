"""`/migration-disks/{migration uuid}`: a root disk in transit between two hosts.

Only agents reach it, each with a capability for exactly this path and method (see
`mininova/conductor/migration_transfer.py`): the source PUTs the disk, streamed to
`<data_dir>/migrations/<uuid>.part` in ~1 MiB chunks and sha256-hashed on the way (the digest
goes next to the file, the file is renamed when complete); the destination GETs it back,
streamed from the file. Without a grant the answer is 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from aiohttp import web

from mininova.api.capability import CAPABILITY
from mininova.api.context import services
from mininova.api.errors import Forbidden, NotFound
from mininova.api.responses import json_response
from mininova.conductor import migration_transfer as transfer

CHUNK = 1024 * 1024


def _write(fh: Any, sha: Any, data: bytes) -> None:
    sha.update(data)
    fh.write(data)


def _finish(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


def _granted(request: web.Request) -> str:
    if CAPABILITY not in request:
        raise Forbidden("Migration disks are for compute hosts with a capability only.")
    return request.match_info["migration_uuid"]


async def put_disk(request: web.Request) -> web.Response:
    migration_uuid = _granted(request)
    config = services(request).config
    final = transfer.stored_file(config, migration_uuid)
    part = final.with_suffix(".part")
    sha = hashlib.sha256()
    fh = await asyncio.to_thread(open, part, "wb")
    try:
        buf = bytearray()
        while chunk := await request.content.read(CHUNK):
            buf += chunk
            if len(buf) >= CHUNK:
                data, buf = bytes(buf), bytearray()
                await asyncio.to_thread(_write, fh, sha, data)
        if buf:
            await asyncio.to_thread(_write, fh, sha, bytes(buf))
        await asyncio.to_thread(_finish, fh)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(fh.close))
        part.unlink(missing_ok=True)
        raise
    digest = sha.hexdigest()
    await asyncio.to_thread(os.replace, part, final)
    await asyncio.to_thread(final.with_suffix(".sha256").write_text, digest)
    return json_response({"sha256": digest}, status=201)


async def get_disk(request: web.Request) -> web.StreamResponse:
    migration_uuid = _granted(request)
    path = transfer.stored_file(services(request).config, migration_uuid)
    if not path.exists():
        raise NotFound(f"No disk in transit for migration {migration_uuid}.")
    return web.FileResponse(path, chunk_size=CHUNK)


def setup(app: web.Application) -> None:
    app.router.add_put(transfer.disk_path("{migration_uuid}"), put_disk)
    app.router.add_get(transfer.disk_path("{migration_uuid}"), get_disk)
