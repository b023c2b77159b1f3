"""Read-only queries for `mininova doctor`: whole-table views the consistency checks compare.

Nothing here writes; every statement is a plain SELECT (or SQLite's integrity check), so the
doctor can run beside a serving controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, select, text

from mininova.store.engine import prepared
from mininova.store.schema import (
    allocations,
    compute_nodes,
    console_tokens,
    images,
    instances,
    migrations,
    tokens,
)

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_i = instances
_INSTANCES = prepared(
    select(
        _i.c.uuid,
        _i.c.host,
        _i.c.vm_state,
        _i.c.task_state,
        _i.c.deleted,
        _i.c.updated_at,
        _i.c.deleted_at,
        _i.c.terminated_at,
        _i.c.vcpus,
        _i.c.memory_mb,
        _i.c.root_gb,
    )
)
_NODES = prepared(
    select(
        compute_nodes.c.host,
        compute_nodes.c.connected,
        compute_nodes.c.last_heartbeat,
        compute_nodes.c.forced_down,
    )
)
_ALLOCATIONS = prepared(select(allocations))
_IMAGES = prepared(
    select(images.c.id, images.c.status, images.c.size, images.c.checksum, images.c.updated_at)
)
_MIGRATIONS = prepared(
    select(
        migrations.c.uuid,
        migrations.c.instance_uuid,
        migrations.c.status,
        migrations.c.source_compute,
        migrations.c.dest_compute,
        migrations.c.updated_at,
    )
)
_EXPIRED_TOKENS = prepared(
    select(func.count().label("n"), func.min(tokens.c.expires_at).label("oldest")).where(
        tokens.c.expires_at < bindparam("before")
    )
)
_CONSOLE_TOKENS = prepared(
    select(
        console_tokens.c.instance_uuid,
        func.count().label("n"),
        func.max(console_tokens.c.expires_at).label("expires_at"),
    ).group_by(console_tokens.c.instance_uuid)
)
_INTEGRITY = text("PRAGMA integrity_check")


async def instances_all(db: Executor) -> list[Row]:
    """uuid, host, states, deletion and timestamps of every instance row (deleted included)."""
    return await db.all(_INSTANCES)


async def nodes(db: Executor) -> list[Row]:
    return await db.all(_NODES)


async def allocations_all(db: Executor) -> list[Row]:
    return await db.all(_ALLOCATIONS)


async def images_all(db: Executor) -> list[Row]:
    return await db.all(_IMAGES)


async def migrations_all(db: Executor) -> list[Row]:
    return await db.all(_MIGRATIONS)


async def expired_tokens(db: Executor, before: str) -> Row:
    """How many identity tokens expired before `before` (ISO) are still stored, the oldest."""
    return await db.one(_EXPIRED_TOKENS, {"before": before}) or {"n": 0, "oldest": None}


async def console_tokens_by_instance(db: Executor) -> list[Row]:
    """instance_uuid, token count and latest expiry of the stored console tokens."""
    return await db.all(_CONSOLE_TOKENS)


async def integrity_check(db: Executor) -> list[str]:
    """SQLite's `PRAGMA integrity_check` lines (["ok"] when sound); [] on PostgreSQL."""
    if db.dialect.name != "sqlite":
        return []
    return [str(next(iter(row.values()))) for row in await db.all(_INTEGRITY)]
