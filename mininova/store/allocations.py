"""The `allocations` table: what each placed instance holds on its host (the claims)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, select

from mininova.store.engine import prepared
from mininova.store.schema import allocations

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_ALL = prepared(select(allocations))
_HOST_USAGE = prepared(
    select(
        func.count().label("instances"),
        func.coalesce(func.sum(allocations.c.vcpus), 0).label("vcpus"),
        func.coalesce(func.sum(allocations.c.memory_mb), 0).label("memory_mb"),
        func.coalesce(func.sum(allocations.c.disk_gb), 0).label("disk_gb"),
    ).where(allocations.c.host == bindparam("host"))
)
_DELETE = prepared(
    delete(allocations)
    .where(allocations.c.instance_uuid == bindparam("uuid"))
    .returning(allocations.c.host)
)


async def all_claims(db: Executor) -> list[Row]:
    return await db.all(_ALL)


async def claim(
    db: Executor, instance_uuid: str, host: str, vcpus: int, memory_mb: int, disk_gb: int
) -> None:
    """Record (or move) an instance's claim."""
    await db.upsert(
        allocations,
        {
            "instance_uuid": instance_uuid,
            "host": host,
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "disk_gb": disk_gb,
        },
        conflict=("instance_uuid",),
    )


async def host_usage(db: Executor, host: str) -> Row:
    """Instances, vCPUs, MiB and GiB claimed on one host (from the table, not a cache)."""
    return await db.one(_HOST_USAGE, {"host": host}) or {}


async def release(db: Executor, instance_uuid: str) -> str | None:
    """Drop an instance's claim; the host it was on (None: it had none)."""
    rows = await db.all(_DELETE, {"uuid": instance_uuid})
    return rows[0]["host"] if rows else None


_USAGE_BY_HOST = prepared(
    select(
        allocations.c.host,
        func.count().label("instances"),
        func.coalesce(func.sum(allocations.c.vcpus), 0).label("vcpus"),
        func.coalesce(func.sum(allocations.c.memory_mb), 0).label("memory_mb"),
        func.coalesce(func.sum(allocations.c.disk_gb), 0).label("disk_gb"),
    ).group_by(allocations.c.host)
)


async def usage_by_host(db: Executor) -> dict[str, Row]:
    """host_usage for every host with claims, in one aggregate (os-hypervisors)."""
    return {row["host"]: row for row in await db.all(_USAGE_BY_HOST)}
