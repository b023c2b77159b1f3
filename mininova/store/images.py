"""The `images` table: Glance image records (the data files live on disk, not here).

Rows come back decoded: `properties` is a dict, `tags` a list, `protected` a bool. Writers
pass Python values for those three and the repository encodes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, or_, select, update

from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import images
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

# Columns a client (through the image or compute API) may change on an existing image.
UPDATABLE = frozenset(
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
        "properties",
    }
)

_GET = prepared(select(images).where(images.c.id == bindparam("id")))
_ALL = prepared(select(images).order_by(images.c.created_at, images.c.id))
_SEEN_BY = prepared(
    select(images)
    .where(
        or_(
            images.c.owner == bindparam("project"),
            images.c.visibility == "public",
            images.c.visibility == "community",
        )
    )
    .order_by(images.c.created_at, images.c.id)
)
_PROPERTIES = prepared(select(images.c.properties).where(images.c.id == bindparam("id")))
_ALL_PROPERTIES = prepared(select(images.c.id, images.c.properties))
_DELETE = prepared(delete(images).where(images.c.id == bindparam("id")))
_SET_STATUS = prepared(
    update(images)
    .where(images.c.id == bindparam("image_id"))
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)
_SET_STATUS_FROM = prepared(
    update(images)
    .where(images.c.id == bindparam("image_id"), images.c.status == bindparam("expect"))
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)
_ACTIVATE = prepared(
    update(images)
    .where(images.c.id == bindparam("image_id"), images.c.status == "saving")
    .values(
        status="active",
        size=bindparam("size"),
        virtual_size=bindparam("virtual_size"),
        checksum=bindparam("checksum"),
        os_hash_algo="sha512",
        os_hash_value=bindparam("hash_value"),
        updated_at=bindparam("now"),
    )
)
_COUNT_OWNED = prepared(
    select(func.count()).select_from(images).where(images.c.owner == bindparam("owner"))
)
_COUNT_UPLOADING = prepared(
    select(func.count())
    .select_from(images)
    .where(
        images.c.owner == bindparam("owner"),
        images.c.status.in_(("saving", "uploading", "importing")),
    )
)
_BYTES_OWNED = prepared(
    select(func.coalesce(func.sum(images.c.size), 0)).where(images.c.owner == bindparam("owner"))
)
_RESET_SAVING = prepared(
    update(images)
    .where(images.c.status == "saving")
    .values(status="queued", updated_at=bindparam("now"))
)


def decode(row: Row | None) -> Row | None:
    """An images row with its JSON columns decoded and `protected` as bool."""
    if row is None:
        return None
    out = dict(row)
    out["properties"] = loads(row.get("properties"), {}) or {}
    out["tags"] = loads(row.get("tags"), []) or []
    out["protected"] = bool(row.get("protected"))
    return out


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "properties" in out:
        out["properties"] = dumps(out["properties"] or {})
    if "tags" in out:
        out["tags"] = dumps(list(out["tags"] or []))
    if "protected" in out:
        out["protected"] = int(bool(out["protected"]))
    return out


async def get(db: Executor, image_id: str) -> Row | None:
    """One image (decoded), or None."""
    return decode(await db.one(_GET, {"id": image_id}))


async def list_all(db: Executor) -> list[Row]:
    """Every image (decoded), oldest first."""
    return [decode(row) for row in await db.all(_ALL)]  # type: ignore[misc]


async def list_seen_by(db: Executor, project_id: str | None) -> list[Row]:
    """The images a project may see: its own plus public and community ones (decoded).

    `project_id=None` means an admin: every image.
    """
    if project_id is None:
        return await list_all(db)
    rows = await db.all(_SEEN_BY, {"project": project_id})
    return [decode(row) for row in rows]  # type: ignore[misc]


async def properties(db: Executor, image_id: str) -> dict[str, Any] | None:
    """An image's properties dict; None when there is no such image."""
    row = await db.one(_PROPERTIES, {"id": image_id})
    return loads(row["properties"], {}) if row else None


async def properties_by_id(db: Executor) -> dict[str, dict[str, Any]]:
    """Every image's properties: id → dict (one query for a whole server list)."""
    return {row["id"]: loads(row["properties"], {}) for row in await db.all(_ALL_PROPERTIES)}


async def count_owned(db: Executor, owner: str) -> int:
    """How many images a project owns, whatever their status (Glance's image_count_total)."""
    return int(await db.scalar(_COUNT_OWNED, {"owner": owner}) or 0)


async def count_uploading(db: Executor, owner: str) -> int:
    """How many of a project's images are receiving data now (image_count_uploading)."""
    return int(await db.scalar(_COUNT_UPLOADING, {"owner": owner}) or 0)


async def bytes_owned(db: Executor, owner: str) -> int:
    """The stored bytes of a project's images (image_size_total counts these)."""
    return int(await db.scalar(_BYTES_OWNED, {"owner": owner}) or 0)


async def create(db: Executor, values: dict[str, Any]) -> None:
    """Insert one image row (`properties`, `tags`, `protected` as Python values)."""
    await db.insert(images, _encode(values))


async def update_fields(db: Executor, image_id: str, **changes: Any) -> bool:
    """Change client-settable columns (and updated_at); True if the image exists."""
    bad = set(changes) - UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    values = _encode(changes)
    values["updated_at"] = now_iso()
    return await db.execute(update(images).where(images.c.id == image_id).values(values)) > 0


async def set_status(db: Executor, image_id: str, status: str, expect: str | None = None) -> bool:
    """Move an image to `status` (only from `expect` when given). True if a row changed."""
    params = {"image_id": image_id, "status": status, "now": now_iso()}
    if expect is None:
        return await db.execute(_SET_STATUS, params) > 0
    return await db.execute(_SET_STATUS_FROM, {**params, "expect": expect}) > 0


async def activate(
    db: Executor,
    image_id: str,
    *,
    size: int,
    virtual_size: int | None,
    checksum: str,
    hash_value: str,
) -> bool:
    """A finished upload: `saving` → `active` with its size and hashes. False when the image
    left `saving` meanwhile (deleted or reset during the upload)."""
    params = {
        "image_id": image_id,
        "size": size,
        "virtual_size": virtual_size,
        "checksum": checksum,
        "hash_value": hash_value,
        "now": now_iso(),
    }
    return await db.execute(_ACTIVATE, params) > 0


async def reset_saving(db: Executor) -> int:
    """Every image still `saving` (its upload was cut) goes back to `queued`."""
    return await db.execute(_RESET_SAVING, {"now": now_iso()})


async def delete_image(db: Executor, image_id: str) -> bool:
    return await db.execute(_DELETE, {"id": image_id}) > 0
