"""Quota overrides (`quotas`: project, resource → hard limit) and the usage aggregates.

Usage is counted live, one aggregate query: instances, vCPUs and MiB of a project's live
instances (from the `vcpus`/`memory_mb` columns), with the user's keypairs and the project's
server groups as scalar subqueries when the whole usage is wanted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, select

from mininova.store.engine import prepared
from mininova.store.schema import instances, keypairs, quotas, server_groups

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_LIMITS = prepared(
    select(quotas.c.resource, quotas.c.hard_limit).where(
        quotas.c.project_id == bindparam("project_id")
    )
)
_RESET = prepared(delete(quotas).where(quotas.c.project_id == bindparam("project_id")))

_instance_usage = (
    func.count().label("instances"),
    func.coalesce(func.sum(instances.c.vcpus), 0).label("cores"),
    func.coalesce(func.sum(instances.c.memory_mb), 0).label("ram"),
)
_live_of_project = (
    instances.c.project_id == bindparam("project_id"),
    instances.c.deleted == 0,
)
_INSTANCE_USAGE = prepared(select(*_instance_usage).where(*_live_of_project))
_USAGE = prepared(
    select(
        *_instance_usage,
        select(func.count())
        .select_from(keypairs)
        .where(keypairs.c.user_id == bindparam("user_id"))
        .scalar_subquery()
        .label("key_pairs"),
        select(func.count())
        .select_from(server_groups)
        .where(server_groups.c.project_id == bindparam("project_id"))
        .scalar_subquery()
        .label("server_groups"),
    ).where(*_live_of_project)
)


async def limits(db: Executor, project_id: str) -> dict[str, int]:
    """A project's overrides: resource → hard limit (-1 unlimited)."""
    rows = await db.all(_LIMITS, {"project_id": project_id})
    return {row["resource"]: int(row["hard_limit"]) for row in rows}


async def set_limit(db: Executor, project_id: str, resource: str, hard_limit: int) -> None:
    await db.upsert(
        quotas,
        {"project_id": project_id, "resource": resource, "hard_limit": int(hard_limit)},
        conflict=("project_id", "resource"),
    )


async def reset(db: Executor, project_id: str) -> int:
    """Drop a project's overrides; how many there were."""
    return await db.execute(_RESET, {"project_id": project_id})


async def instance_usage(db: Executor, project_id: str) -> Row:
    """{"instances", "cores", "ram"} of the project's live instances (one aggregate)."""
    row = await db.one(_INSTANCE_USAGE, {"project_id": project_id}) or {}
    return {key: int(row.get(key) or 0) for key in ("instances", "cores", "ram")}


async def usage(db: Executor, project_id: str, user_id: str | None) -> Row:
    """instances, cores, ram, key_pairs (of `user_id`; 0 when None) and server_groups."""
    row = await db.one(_USAGE, {"project_id": project_id, "user_id": user_id or ""}) or {}
    counted = ("instances", "cores", "ram", "key_pairs", "server_groups")
    result = {key: int(row.get(key) or 0) for key in counted}
    if user_id is None:
        result["key_pairs"] = 0
    return result
