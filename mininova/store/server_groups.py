"""Server groups (`server_groups`) and their members (`server_group_members`).

Group rows come back with `rules` and `metadata` DECODED (dicts, {} when empty), the other
columns as stored. An instance belongs to at most one group (`instance_uuid` is unique).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select

from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import allocations, instances, server_group_members, server_groups

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_m = server_group_members
_GET = prepared(select(server_groups).where(server_groups.c.id == bindparam("id")))
_LIST_ALL = prepared(select(server_groups).order_by(server_groups.c.created_at, server_groups.c.id))
_LIST_PROJECT = prepared(
    select(server_groups)
    .where(server_groups.c.project_id == bindparam("project_id"))
    .order_by(server_groups.c.created_at, server_groups.c.id)
)
_live_members = (
    select(_m.c.group_id, _m.c.instance_uuid)
    .join(instances, (instances.c.uuid == _m.c.instance_uuid) & (instances.c.deleted == 0))
    .order_by(instances.c.id)
)
_MEMBERS = prepared(_live_members.where(_m.c.group_id == bindparam("id")))
_MEMBERS_MANY = prepared(_live_members.where(_m.c.group_id.in_(bindparam("ids", expanding=True))))
_MEMBER_COUNT = prepared(
    select(func.count()).select_from(_m).where(_m.c.group_id == bindparam("id"))
)
_GROUP_OF = prepared(select(_m.c.group_id).where(_m.c.instance_uuid == bindparam("uuid")))
_REMOVE_MEMBER = prepared(delete(_m).where(_m.c.instance_uuid == bindparam("uuid")))
_REMOVE_MEMBER_OF = prepared(
    delete(_m).where(_m.c.instance_uuid == bindparam("uuid"), _m.c.group_id == bindparam("id"))
)
_HOST_COUNTS = prepared(
    select(allocations.c.host, func.count().label("n"))
    .select_from(_m.join(allocations, allocations.c.instance_uuid == _m.c.instance_uuid))
    .where(_m.c.group_id == bindparam("id"), _m.c.instance_uuid != bindparam("exclude"))
    .group_by(allocations.c.host)
)
_DELETE_MEMBERS = prepared(delete(_m).where(_m.c.group_id == bindparam("id")))
_DELETE = prepared(delete(server_groups).where(server_groups.c.id == bindparam("id")))
_COUNT_PROJECT = prepared(
    select(func.count())
    .select_from(server_groups)
    .where(server_groups.c.project_id == bindparam("project_id"))
)


def _decode(row: Row | None) -> Row | None:
    if row is None:
        return None
    row = dict(row)
    row["rules"] = loads(row.get("rules"), {}) or {}
    row["metadata"] = loads(row.get("metadata"), {}) or {}
    return row


# ------------------------------------------------------------------------------- groups


async def get(db: Executor, group_id: str) -> Row | None:
    """The group (any project), `rules`/`metadata` decoded to dicts, or None."""
    return _decode(await db.one(_GET, {"id": group_id}))


async def visible(
    db: Executor, group_id: str, project_id: str | None, is_admin: bool
) -> Row | None:
    """The group if the caller may see it (its own project's, any for an admin), else None."""
    row = await get(db, group_id)
    if row is None or (not is_admin and row["project_id"] != project_id):
        return None
    return row


async def list_groups(db: Executor, project_id: str | None) -> list[Row]:
    """A project's groups (every project's when `project_id` is None), oldest first."""
    if project_id is None:
        rows = await db.all(_LIST_ALL)
    else:
        rows = await db.all(_LIST_PROJECT, {"project_id": project_id})
    return [_decode(r) for r in rows]  # type: ignore[misc]


async def insert(
    db: Executor,
    *,
    group_id: str,
    name: str,
    project_id: str,
    user_id: str,
    policy: str,
    rules: Mapping[str, Any],
    created_at: str,
) -> None:
    """INSERT a group (no metadata). The caller checks the quota in the same transaction,
    holding `tx.lock(f"quota:{project_id}")`."""
    await db.insert(
        server_groups,
        {
            "id": group_id,
            "name": name,
            "project_id": project_id,
            "user_id": user_id,
            "policy": policy,
            "rules": dumps(dict(rules)),
            "metadata": "{}",
            "created_at": created_at,
        },
    )


async def delete_group(db: Executor, group_id: str) -> bool:
    """Delete a group and its membership rows; False when there was no such group."""
    async with getattr(db, "store", db).transaction() as tx:
        await tx.execute(_DELETE_MEMBERS, {"id": group_id})
        return await tx.execute(_DELETE, {"id": group_id}) > 0


async def count_for_project(db: Executor, project_id: str) -> int:
    """How many groups a project has (its `server_groups` quota usage)."""
    return int(await db.scalar(_COUNT_PROJECT, {"project_id": project_id}) or 0)


# ------------------------------------------------------------------------------ members


async def members(db: Executor, group_id: str) -> list[str]:
    """Uuids of the group's members that are not deleted, in creation order."""
    return [r["instance_uuid"] for r in await db.all(_MEMBERS, {"id": group_id})]


async def members_of(db: Executor, group_ids: Iterable[str]) -> dict[str, list[str]]:
    """`members` of several groups in one query: {group_id: [uuid, …]} (every id present)."""
    ids = list(group_ids)
    found: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for r in await db.all(_MEMBERS_MANY, {"ids": ids}):
            found[r["group_id"]].append(r["instance_uuid"])
    return found


async def member_count(db: Executor, group_id: str) -> int:
    """How many membership rows the group has (its `server_group_members` quota usage)."""
    return int(await db.scalar(_MEMBER_COUNT, {"id": group_id}) or 0)


async def add_member(db: Executor, group_id: str, instance_uuid: str) -> None:
    """Make the instance a member of the group (it must not be in a group yet)."""
    await db.insert(server_group_members, {"group_id": group_id, "instance_uuid": instance_uuid})


async def remove_member(db: Executor, instance_uuid: str, *, group_id: str | None = None) -> bool:
    """Take the instance out of its group (only out of `group_id` when given); False when it
    was in none. Called when an instance is deleted."""
    if group_id is None:
        count = await db.execute(_REMOVE_MEMBER, {"uuid": instance_uuid})
    else:
        count = await db.execute(_REMOVE_MEMBER_OF, {"uuid": instance_uuid, "id": group_id})
    return count > 0


async def group_of(db: Executor, instance_uuid: str) -> str | None:
    """The id of the group the instance belongs to, or None."""
    return await db.scalar(_GROUP_OF, {"uuid": instance_uuid})


async def groups_of(db: Executor, instance_uuid: str) -> list[str]:
    """`group_of` as a list ([] or [id]), the shape of a server's `server_groups` field."""
    group_id = await group_of(db, instance_uuid)
    return [] if group_id is None else [group_id]


async def member_hosts(db: Executor, group_id: str, *, exclude: str = "") -> dict[str, int]:
    """{host: number of the group's members allocated there}, not counting `exclude` (the
    instance being scheduled). For the (anti-)affinity filters and weighers."""
    rows = await db.all(_HOST_COUNTS, {"id": group_id, "exclude": exclude})
    return {r["host"]: int(r["n"]) for r in rows}
