"""Soft-deleted instances (Nova's reclaim_instance_interval): their `deleted_at` and the
reaper's queries.

A soft-deleted instance is a live row (`deleted = 0`) in vm_state `soft-delete` with the time
of its delete in `deleted_at`; the reaper deletes those older than the interval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, or_, select
from sqlalchemy import update as sql_update

from mininova.store.engine import prepared
from mininova.store.schema import instances
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor

_i = instances

_SET_DELETED_AT = prepared(
    sql_update(_i)
    .where(_i.c.uuid == bindparam("uuid"), _i.c.deleted == 0)
    .values(deleted_at=bindparam("deleted_at"), updated_at=bindparam("now"))
)

# Reclaimable: soft-deleted, no task running, deleted at or before the cutoff (a missing
# deleted_at counts as old enough, as in Nova's reaper).
_OLD_ENOUGH = or_(_i.c.deleted_at.is_(None), _i.c.deleted_at <= bindparam("cutoff"))
_RECLAIMABLE = prepared(
    select(_i.c.uuid)
    .where(
        _i.c.deleted == 0,
        _i.c.vm_state == bindparam("vm_state"),
        _i.c.task_state.is_(None),
        _OLD_ENOUGH,
    )
    .order_by(_i.c.deleted_at, _i.c.id)
)
_START_RECLAIM = prepared(
    sql_update(_i)
    .where(
        _i.c.uuid == bindparam("uuid"),
        _i.c.deleted == 0,
        _i.c.vm_state == bindparam("vm_state"),
        _i.c.task_state.is_(None),
        _OLD_ENOUGH,
    )
    .values(task_state=bindparam("task_state"), updated_at=bindparam("now"))
)


async def set_deleted_at(db: Executor, uuid: str, deleted_at: str | None) -> None:
    """Record (or, with None, clear) when a live instance was soft-deleted."""
    await db.execute(_SET_DELETED_AT, {"uuid": uuid, "deleted_at": deleted_at, "now": now_iso()})


async def reclaimable(db: Executor, vm_state: str, cutoff: str) -> list[str]:
    """uuids of the settled instances in `vm_state` deleted at or before `cutoff`."""
    rows = await db.all(_RECLAIMABLE, {"vm_state": vm_state, "cutoff": cutoff})
    return [str(row["uuid"]) for row in rows]


async def start_reclaim(
    db: Executor, uuid: str, vm_state: str, cutoff: str, task_state: str
) -> bool:
    """Set `task_state` on the instance only if it is still reclaimable (not restored,
    no task started meanwhile); whether it was."""
    params = {
        "uuid": uuid,
        "vm_state": vm_state,
        "cutoff": cutoff,
        "task_state": task_state,
        "now": now_iso(),
    }
    return await db.execute(_START_RECLAIM, params) > 0
