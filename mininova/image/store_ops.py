"""Image records and files: the helpers shared by the Glance API, the compute proxy and the
conductor (which hands an image's download URL + checksum to agents).

Image data lives in ``<data_dir>/images/<id>``; uploads are streamed to a temp file next to it
and renamed into place once complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mininova.errors import Conflict, ImageStorageFull, NotFound, PermissionDenied, StorageFull
from mininova.image import limits
from mininova.image.limits import ImageLimitExceeded, ImageLimits
from mininova.store import images
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.config import ServeConfig
    from mininova.store import Store
    from mininova.store.engine import Executor, Transaction


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
# Names that cannot be used as extra (free-form) properties: the columns, and Glance's own.
RESERVED = (
    READ_ONLY
    | (images.UPDATABLE - {"properties"})
    | frozenset({"os_hidden", "members", "member_status", "image_id", "location"})
)

# Glance's answer when the store has no room (glance.api.v2.image_data, StorageFull → 413).
STORAGE_FULL_MESSAGE = (
    "Image storage media is full: There is not enough disk space on the image storage media."
)


def images_dir(config: ServeConfig) -> Path:
    return Path(config.data_dir) / "images"


def image_path(config: ServeConfig, image_id: str) -> Path:
    """Where an image's data lives (the file exists only once the image is active)."""
    return images_dir(config) / image_id


def image_file_url(config: ServeConfig, image_id: str) -> str:
    """Absolute URL agents GET (with an X-Auth-Token) to download the image data."""
    return f"{config.base_url}/image/v2/images/{image_id}/file"


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


async def get_image_row(store: Executor, image_id: str) -> dict[str, Any] | None:
    """The decoded image record (properties dict, tags list), or None. No access checks."""
    if not is_uuid(image_id):
        return None
    return await images.get(store, image_id)


async def create_image_record(
    store: Executor,
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
    await images.create(
        store,
        {
            "id": image_id,
            "name": name,
            "status": status,
            "disk_format": disk_format,
            "container_format": container_format,
            "owner": owner,
            "visibility": visibility,
            "min_disk": int(min_disk),
            "min_ram": int(min_ram),
            "protected": protected,
            "properties": properties or {},
            "tags": tags or [],
            "created_at": now,
            "updated_at": now,
        },
    )
    row = await images.get(store, image_id)
    assert row is not None
    return row


async def create_snapshot_record(
    tx: Transaction, image_limits: ImageLimits | None, *, owner: str, **fields: Any
) -> dict[str, Any]:
    """The queued image a snapshot (createImage, shelve) uploads into, counted against its
    owner's `image_count_total` (in the caller's transaction, so a refusal rolls back what
    the caller changed with it)."""
    if image_limits is not None:
        await limits.check_count_total(tx, image_limits, owner)
    return await create_image_record(tx, owner=owner, **fields)


async def set_image_status(
    store: Executor, image_id: str, status: str, expect: str | None = None
) -> bool:
    """Move an image to `status` (only from `expect` when given). True if a row changed."""
    return await images.set_status(store, image_id, status, expect)


async def delete_image(store: Store, config: ServeConfig, image_id: str) -> None:
    """Remove the record and its data file (no access checks)."""
    await images.delete_image(store, image_id)
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


# -- catalog operations (the Glance and compute APIs call these) ----------------------------


async def list_visible(store: Executor, ctx: Caller) -> list[dict[str, Any]]:
    """Every image the caller may see (decoded), unfiltered and unsorted."""
    project = None if ctx.is_admin else ctx.project_id
    return await images.list_seen_by(store, project)


async def create_image(
    store: Store,
    *,
    properties: dict[str, str],
    image_limits: ImageLimits | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A client's new image (`POST /v2/images`); Conflict when the chosen id exists,
    ImageLimitExceeded when its owner has `image_limits.count_total` images already."""
    async with store.transaction() as tx:
        if image_limits is not None:
            await limits.check_count_total(tx, image_limits, str(fields["owner"]))
        image_id = fields.get("image_id")
        if image_id and await get_image_row(tx, image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        return await create_image_record(tx, properties=properties, **fields)


async def save_image(
    store: Executor, image_id: str, fields: dict[str, Any], properties: dict[str, str]
) -> dict[str, Any]:
    """Store a patched image (core fields and the whole properties dict); the fresh record."""
    await images.update_fields(store, image_id, **fields, properties=properties)
    fresh = await images.get(store, image_id)
    if fresh is None:
        raise NotFound(f"No image found with ID {image_id}")
    return fresh


async def set_tags(store: Executor, image_id: str, tags: list[str]) -> None:
    await images.update_fields(store, image_id, tags=tags)


async def remove_tag(store: Store, ctx: Caller, image_id: str, tag: str) -> None:
    row = await load_modifiable(store, ctx, image_id)
    if tag not in row["tags"]:
        raise NotFound(f"Tag {tag} not found.")
    await set_tags(store, row["id"], [t for t in row["tags"] if t != tag])


async def set_properties(store: Executor, image_id: str, properties: dict[str, str]) -> None:
    """Replace an image's free-form properties (the compute API's image metadata)."""
    await images.update_fields(store, image_id, properties=properties)


async def delete_unprotected(store: Store, config: ServeConfig, row: dict[str, Any]) -> None:
    """Delete an image the caller may modify, unless it is protected."""
    if row["protected"]:
        raise PermissionDenied(f"Image {row['id']} is protected and cannot be deleted.")
    await delete_image(store, config, row["id"])


async def data_target(
    store: Store, ctx: Caller | None, image_id: str, *, modify: bool
) -> dict[str, Any]:
    """The image of a data request: visible (or modifiable) to `ctx`, or, with `ctx=None`,
    the image an agent's capability names (no access checks: the grant names the path)."""
    if ctx is None:
        row = await get_image_row(store, image_id)
        if row is None:
            raise NotFound(f"No image found with ID {image_id}")
        return row
    if modify:
        return await load_modifiable(store, ctx, image_id)
    return await load_visible(store, ctx, image_id)


@dataclass(frozen=True)
class UploadCap:
    """The most bytes one upload may bring, and whether the size cap or the project's byte
    quota sets it (the two answer 413 with different Glance texts)."""

    limit: int
    by_quota: bool

    def refusal(self, size: int) -> ImageLimitExceeded:
        """The error for an upload of `size` bytes (or more) that does not fit."""
        if self.by_quota:
            return ImageLimitExceeded(limits.storage_full(size, self.limit))
        return ImageLimitExceeded(limits.too_large(self.limit))


Receiver = Callable[[Path, UploadCap], Awaitable[tuple[int, str, str]]]


async def store_upload(
    store: Store,
    config: ServeConfig,
    row: dict[str, Any],
    receive: Receiver,
    image_limits: ImageLimits | None = None,
) -> None:
    """Upload an image's data: `queued` → `saving`, `receive(tmp, cap)` streams at most
    `cap.limit` bytes into a temp file (returning size, MD5 and SHA-512 hex digests), then
    the file is renamed into place and the image becomes `active`.

    The owner's image limits are checked at the start (uploads at a time, bytes left) and
    again, under the owner's lock, before the image becomes active. Any failure removes the
    file and puts the image back to `queued`."""
    image_id = row["id"]
    owner = str(row["owner"] or "")
    image_limits = image_limits or ImageLimits.from_config(config)
    async with store.transaction() as tx:
        allowed = await limits.check_upload_start(tx, image_limits, owner)
        if not await images.set_status(tx, image_id, "saving", expect="queued"):
            raise Conflict("Image status transition from saving to saving is not allowed")
    cap = UploadCap(allowed, by_quota=allowed < image_limits.size_cap)
    directory = images_dir(config)
    final = image_path(config, image_id)
    tmp = directory / f".{image_id}.{uuid.uuid4().hex}.part"
    try:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        size, checksum, hash_value = await receive(tmp, cap)
        virtual_size = await qemu_virtual_size(tmp, row["disk_format"], size)
        async with store.transaction() as tx:
            await limits.check_upload_end(tx, image_limits, owner, size)
            await asyncio.to_thread(os.replace, tmp, final)
            activated = await images.activate(
                tx,
                image_id,
                size=size,
                virtual_size=virtual_size,
                checksum=checksum,
                hash_value=hash_value,
            )
            if not activated:  # deleted (or reset) while uploading
                raise Conflict(f"Image {image_id} was deleted during the upload.")
    except BaseException as exc:
        # also when the database's disk is full at activation: no active-less file is left
        await asyncio.shield(_abort_upload(store, image_id, tmp, final))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("upload of image %s: the image store is full: %s", image_id, exc)
            raise ImageStorageFull(STORAGE_FULL_MESSAGE) from exc
        raise


async def _abort_upload(store: Store, image_id: str, tmp: Path, final: Path) -> None:
    """Remove the partial (or renamed) file first (on a full disk that frees the room the
    database needs), then the image goes back to `queued`."""
    await asyncio.to_thread(_unlink, tmp)
    await asyncio.to_thread(_unlink, final)
    try:
        await images.set_status(store, image_id, "queued", expect="saving")
    except StorageFull:  # still no room: recover_uploads resets it at the next start
        log.error("image %s stays in saving: the database's disk is full", image_id)


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


QCOW2_MAGIC = b"QFI\xfb"
QCOW2_VERSIONS = frozenset({2, 3})  # the qcow2 header versions qemu writes


def qcow2_virtual_size(path: Path) -> int | None:
    """The virtual size a qcow2 header declares (big-endian u64 at offset 24, after the magic
    and version), read without running anything on the file; None if it is not qcow2."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(32)
    except OSError:
        return None
    if len(header) < 32 or header[:4] != QCOW2_MAGIC:
        return None
    version = int.from_bytes(header[4:8], "big")
    if version not in QCOW2_VERSIONS:
        return None
    return int.from_bytes(header[24:32], "big")


async def qemu_virtual_size(
    path: Path, disk_format: str | None, size: int | None = None, timeout: float = 60.0
) -> int | None:
    """Virtual size: `size` for raw-like formats, the header's for qcow2, else `qemu-img
    info --output=json` in a subprocess; None when qemu-img is unavailable or fails.

    The format is forced from `disk_format` (qemu-img never probes). But a qcow2 header is
    always believed, whatever `disk_format` says: agents boot what the data really is, so
    a "raw" upload that is a qcow2 claiming 100 TiB must show (and be checked at) 100 TiB.
    """
    header_size = await asyncio.to_thread(qcow2_virtual_size, path)
    if disk_format == "qcow2":
        return header_size
    if header_size is not None:  # declared as something else, but it is a qcow2
        return max(header_size, size or 0)
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
    await images.reset_saving(store)
    directory = images_dir(config)
    if directory.is_dir():
        for entry in directory.glob(".*.part"):
            with contextlib.suppress(OSError):
                os.unlink(entry)
