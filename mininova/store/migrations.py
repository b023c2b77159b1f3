"""The `migrations` table: one row per resize or cold migration (Nova's Migration object).

`status` goes 'pre-migrating' → 'migrating' → 'post-migrating' → 'finished' (VERIFY_RESIZE),
then 'confirming' → 'confirmed' or 'reverting' → 'reverted'; 'error' when it failed and was
rolled back. Rows come back with `old_flavor`/`new_flavor` decoded to dicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy import update as sql_update

from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import migrations

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_m = migrations
_GET = prepared(select(_m).where(_m.c.uuid == bindparam("uuid")))
_OF_INSTANCE = prepared(
    select(_m).where(_m.c.instance_uuid == bindparam("instance_uuid")).order_by(_m.c.id.desc())
)
_ALL = prepared(select(_m).order_by(_m.c.id.desc()))
_BY_STATUS = prepared(select(_m).where(_m.c.status == bindparam("status")).order_by(_m.c.id))
_SET_STATUS = prepared(
    sql_update(_m)
    .where(_m.c.uuid == bindparam("uuid"))
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)
_SET_DEST = prepared(
    sql_update(_m)
    .where(_m.c.uuid == bindparam("uuid"))
    .values(dest_compute=bindparam("dest"), status=bindparam("status"), updated_at=bindparam("now"))
)


def _decode(row: Row | None) -> Row | None:
    if row is None:
        return None
    row = dict(row)
    row["old_flavor"] = loads(row["old_flavor"], {}) or {}
    row["new_flavor"] = loads(row["new_flavor"], {}) or {}
    return row


async def create(db: Executor, values: dict[str, Any]) -> Row:
    """Insert a migration (flavors as dicts); the row with its id."""
    row = dict(values)
    row["old_flavor"] = dumps(row["old_flavor"])
    row["new_flavor"] = dumps(row["new_flavor"])
    inserted = await db.insert(migrations, row, returning=("id",))
    return {**values, "id": int(inserted["id"])}


async def get(db: Executor, uuid: str) -> Row | None:
    return _decode(await db.one(_GET, {"uuid": uuid}))


async def of_instance(db: Executor, instance_uuid: str) -> list[Row]:
    """An instance's migrations, newest first."""
    rows = await db.all(_OF_INSTANCE, {"instance_uuid": instance_uuid})
    return [r for r in map(_decode, rows) if r is not None]


async def latest_of_instance(db: Executor, instance_uuid: str) -> Row | None:
    rows = await of_instance(db, instance_uuid)
    return rows[0] if rows else None


async def list_all(db: Executor) -> list[Row]:
    """Every migration, newest first (os-migrations)."""
    return [r for r in map(_decode, await db.all(_ALL)) if r is not None]


async def with_status(db: Executor, status: str) -> list[Row]:
    """Migrations in one status, oldest first (the auto-confirm sweep reads 'finished')."""
    return [r for r in map(_decode, await db.all(_BY_STATUS, {"status": status})) if r is not None]


async def set_status(db: Executor, uuid: str, status: str, now: str) -> None:
    await db.execute(_SET_STATUS, {"uuid": uuid, "status": status, "now": now})


async def set_dest(db: Executor, uuid: str, dest: str, status: str, now: str) -> None:
    await db.execute(_SET_DEST, {"uuid": uuid, "dest": dest, "status": status, "now": now})
