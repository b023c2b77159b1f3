"""Image records and files: the helpers shared by the Glance API, the compute proxy and the
conductor (which hands an image's download URL + checksum to agents).

Image data lives in ``<data_dir>/images/<id>``; uploads are streamed to a temp file next to it
and renamed into place once complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mininova.errors import NotFound, PermissionDenied
from mininova.store.db import dumps, loads
from mininova.timeutil import nova_time, now_iso

if TYPE_CHECKING:
    from mininova.config import ServeConfig
    from mininova.store import Store


class Caller(Protocol):
    """Who is asking (the API's RequestContext fits): only these two are read."""

    @property
    def is_admin(self) -> bool: ...

    @property
    def project_id(self) -> str: ...


log = logging.getLogger(__name__)

DISK_FORMATS = ("raw", "qcow2", "iso", "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "vdi", "ploop")
CONTAINER_FORMATS = ("bare", "ovf", "ova", "ami", "ari", "aki", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = (
    "queued",
    "saving",
    "active",
    "killed",
    "deleted",
    "pending_delete",
    "deactivated",
    "uploading",
    "importing",
)

# Columns of the images table that are exposed as-is in the Glance view.
CORE_COLUMNS = (
    "id",
    "name",
    "status",
    "disk_format",
    "container_format",
    "visibility",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "min_disk",
    "min_ram",
    "protected",
    "tags",
    "created_at",
    "updated_at",
)
# Keys the server computes: never settable by a client (create → 400, PATCH → 403).
READ_ONLY = frozenset(
    {
        "id",
        "status",
        "size",
        "virtual_size",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "created_at",
        "updated_at",
        "self",
        "file",
        "schema",
        "direct_url",
        "locations",
        "deleted",
        "deleted_at",
        "stores",
        "os_glance_import_task",
    }
)
# Names that cannot be used as extra (free-form) properties.
RESERVED = READ_ONLY | frozenset(
    {
        "name",
        "disk_format",
        "container_format",
        "visibility",
        "owner",
        "min_disk",
        "min_ram",
        "protected",
        "tags",
        "os_hidden",
        "members",
        "member_status",
        "image_id",
        "location",
    }
)

DEFAULT_SIZE_CAP = 20 * 1024**3  # 20 GiB; override with `image_size_cap` in the config file


def images_dir(config: ServeConfig) -> Path:
    return Path(config.data_dir) / "images"


def image_path(config: ServeConfig, image_id: str) -> Path:
    """Where an image's data lives (the file exists only once the image is active)."""
    return images_dir(config) / image_id


def image_file_url(config: ServeConfig, image_id: str) -> str:
    """Absolute URL agents GET (with an X-Auth-Token) to download the image data."""
    return f"{config.base_url}/image/v2/images/{image_id}/file"


def size_cap(config: ServeConfig) -> int:
    try:
        return int(config.extra.get("image_size_cap", DEFAULT_SIZE_CAP))
    except (TypeError, ValueError):
        return DEFAULT_SIZE_CAP


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """A DB row with JSON columns decoded and `protected` as bool."""
    out = dict(row)
    out["properties"] = loads(row.get("properties"), {}) or {}
    out["tags"] = loads(row.get("tags"), []) or []
    out["protected"] = bool(row.get("protected"))
    return out


async def get_image_row(store: Store, image_id: str) -> dict[str, Any] | None:
    """The decoded image record (properties dict, tags list), or None. No access checks."""
    if not is_uuid(image_id):
        return None
    row = await store.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    return decode_row(row) if row else None


async def create_image_record(
    store: Store,
    *,
    owner: str,
    name: str | None = None,
    disk_format: str | None = None,
    container_format: str | None = "bare",
    visibility: str = "shared",
    min_disk: int = 0,
    min_ram: int = 0,
    protected: bool = False,
    tags: list[str] | None = None,
    properties: dict[str, str] | None = None,
    image_id: str | None = None,
    status: str = "queued",
) -> dict[str, Any]:
    """Insert a new (queued) image record and return it decoded. Used by `POST /v2/images`
    and by the conductor for `createImage` snapshots (the record must exist before the 202)."""
    image_id = image_id or str(uuid.uuid4())
    now = now_iso()
    await store.execute(
        "INSERT INTO images (id, name, status, disk_format, container_format, size,"
        " virtual_size, checksum, os_hash_algo, os_hash_value, owner, visibility, min_disk,"
        " min_ram, protected, properties, tags, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            image_id,
            name,
            status,
            disk_format,
            container_format,
            owner,
            visibility,
            min_disk,
            min_ram,
            int(bool(protected)),
            dumps(properties or {}),
            json.dumps(tags or []),
            now,
            now,
        ),
    )
    row = await get_image_row(store, image_id)
    assert row is not None
    return row


async def set_image_status(
    store: Store, image_id: str, status: str, expect: str | None = None
) -> bool:
    """Move an image to `status` (only from `expect` when given). True if a row changed."""
    sql = "UPDATE images SET status = ?, updated_at = ? WHERE id = ?"
    params: list[Any] = [status, now_iso(), image_id]
    if expect is not None:
        sql += " AND status = ?"
        params.append(expect)
    return await store.execute(sql, params) > 0


async def delete_image(store: Store, config: ServeConfig, image_id: str) -> None:
    """Remove the record and its data file (no access checks)."""
    await store.execute("DELETE FROM images WHERE id = ?", (image_id,))
    path = image_path(config, image_id)
    await asyncio.to_thread(_unlink, path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# -- access rules ---------------------------------------------------------------------------


def can_see(ctx: Caller, row: dict[str, Any]) -> bool:
    """Admin sees all; otherwise own images plus public and community ones."""
    if ctx.is_admin or row.get("owner") == ctx.project_id:
        return True
    return row.get("visibility") in ("public", "community")


def listed_by_default(ctx: Caller, row: dict[str, Any]) -> bool:
    """Glance lists others' community images only when asked with visibility=community."""
    if ctx.is_admin or row.get("owner") == ctx.project_id:
        return True
    return row.get("visibility") == "public"


def can_modify(ctx: Caller, row: dict[str, Any]) -> bool:
    return ctx.is_admin or row.get("owner") == ctx.project_id


async def load_visible(store: Store, ctx: Caller, image_id: str) -> dict[str, Any]:
    """The decoded image if the caller may see it, else NotFound (also for non-UUID ids)."""
    row = await get_image_row(store, image_id)
    if row is None or not can_see(ctx, row):
        raise NotFound(f"No image found with ID {image_id}")
    return row


async def load_modifiable(store: Store, ctx: Caller, image_id: str) -> dict[str, Any]:
    row = await load_visible(store, ctx, image_id)
    if not can_modify(ctx, row):
        raise PermissionDenied(f"You are not permitted to modify image {image_id}.")
    return row


# -- views ----------------------------------------------------------------------------------


def glance_time(text: str | None) -> str | None:
    return nova_time(text)


def glance_view(row: dict[str, Any]) -> dict[str, Any]:
    """Glance v2 image representation; extra properties become top-level keys."""
    image_id = row["id"]
    view: dict[str, Any] = {}
    for key, value in (row.get("properties") or {}).items():
        if key not in RESERVED:
            view[key] = value
    view.update(
        {
            "id": image_id,
            "name": row.get("name"),
            "status": row.get("status"),
            "disk_format": row.get("disk_format"),
            "container_format": row.get("container_format"),
            "visibility": row.get("visibility"),
            "size": row.get("size"),
            "virtual_size": row.get("virtual_size"),
            "checksum": row.get("checksum"),
            "os_hash_algo": row.get("os_hash_algo"),
            "os_hash_value": row.get("os_hash_value"),
            "owner": row.get("owner"),
            "min_disk": row.get("min_disk") or 0,
            "min_ram": row.get("min_ram") or 0,
            "protected": bool(row.get("protected")),
            "os_hidden": False,
            "tags": list(row.get("tags") or []),
            "created_at": glance_time(row.get("created_at")),
            "updated_at": glance_time(row.get("updated_at")),
            "self": f"/v2/images/{image_id}",
            "file": f"/v2/images/{image_id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    return view


# -- qemu-img -------------------------------------------------------------------------------

_QEMU_FORMATS = {
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vdi": "vdi",
    "vhdx": "vhdx",
    "vhd": "vpc",
    "ploop": "parallels",
}
_RAW_FORMATS = ("raw", "iso", "ami", "ari", "aki")


async def qemu_virtual_size(
    path: Path, disk_format: str | None, size: int | None = None, timeout: float = 60.0
) -> int | None:
    """Virtual size: `size` for raw-like formats, else `qemu-img info --output=json` in a
    subprocess; None when qemu-img is unavailable or fails.

    The format is forced from `disk_format` (never probed), so a file that is not what it
    claims to be simply gets no virtual size.
    """
    if disk_format in _RAW_FORMATS and size is not None:
        return size
    exe = shutil.which("qemu-img")
    fmt = _QEMU_FORMATS.get(disk_format or "")
    if exe is None or fmt is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "info",
            "--output=json",
            "-f",
            fmt,
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        if isinstance(exc, TimeoutError):
            return None
        raise
    if proc.returncode != 0:
        return None
    try:
        value = json.loads(out).get("virtual-size")
    except ValueError:
        return None
    return int(value) if isinstance(value, int) else None


async def recover_uploads(store: Store, config: ServeConfig) -> None:
    """At controller start: uploads cut by a crash go back to `queued`; temp files go away."""
    await store.execute(
        "UPDATE images SET status = 'queued', updated_at = ? WHERE status = 'saving'", (now_iso(),)
    )
    directory = images_dir(config)
    if directory.is_dir():
        for entry in directory.glob(".*.part"):
            with contextlib.suppress(OSError):
                os.unlink(entry)
