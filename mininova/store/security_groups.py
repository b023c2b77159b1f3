"""Security groups (`security_groups`), their rules (`security_group_rules`) and which servers
are in which group (`instance_security_groups`).

Rows come back as stored (`stateful`/`is_default` are 0/1). Membership queries count live
instances only (`instances.deleted == 0`); `forget_instance` drops a deleted server's rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, or_, select, update

from mininova.store.engine import prepared
from mininova.store.schema import (
    instance_security_groups,
    instances,
    security_group_rules,
    security_groups,
)

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_g = security_groups
_r = security_group_rules
_m = instance_security_groups

_order_groups = (_g.c.created_at, _g.c.id)
_LIST_ALL = prepared(select(_g).order_by(*_order_groups))
_LIST_PROJECT = prepared(
    select(_g).where(_g.c.project_id == bindparam("project_id")).order_by(*_order_groups)
)
_GET = prepared(select(_g).where(_g.c.id == bindparam("id")))
_DEFAULT_OF = prepared(
    select(_g).where(_g.c.project_id == bindparam("project_id"), _g.c.is_default == 1)
)
_COUNT_GROUPS = prepared(
    select(func.count()).select_from(_g).where(_g.c.project_id == bindparam("project_id"))
)
_DELETE = prepared(delete(_g).where(_g.c.id == bindparam("id")))
_BUMP = prepared(
    update(_g)
    .where(_g.c.id == bindparam("id"))
    .values(revision_number=_g.c.revision_number + 1, updated_at=bindparam("now"))
)

_order_rules = (_r.c.created_at, _r.c.id)
_RULES_ALL = prepared(select(_r).order_by(*_order_rules))
_RULES_PROJECT = prepared(
    select(_r).where(_r.c.project_id == bindparam("project_id")).order_by(*_order_rules)
)
_RULES_OF = prepared(
    select(_r)
    .where(_r.c.security_group_id.in_(bindparam("ids", expanding=True)))
    .order_by(*_order_rules)
)
_RULES_REFERRING = prepared(
    select(_r.c.security_group_id)
    .where(_r.c.remote_group_id.in_(bindparam("ids", expanding=True)))
    .distinct()
)
_GET_RULE = prepared(select(_r).where(_r.c.id == bindparam("id")))
_DELETE_RULE = prepared(delete(_r).where(_r.c.id == bindparam("id")))
_DELETE_RULES_OF = prepared(
    delete(_r).where(
        or_(_r.c.security_group_id == bindparam("id"), _r.c.remote_group_id == bindparam("id"))
    )
)
_COUNT_RULES = prepared(
    select(func.count()).select_from(_r).where(_r.c.project_id == bindparam("project_id"))
)

_live = (instances.c.uuid == _m.c.instance_uuid) & (instances.c.deleted == 0)
_MEMBERS_OF = prepared(
    select(_m.c.security_group_id, _m.c.instance_uuid, instances.c.host)
    .join(instances, _live)
    .where(_m.c.security_group_id.in_(bindparam("ids", expanding=True)))
    .order_by(instances.c.id)
)
_GROUPS_OF = prepared(
    select(_m.c.instance_uuid, _g)
    .join(_g, _g.c.id == _m.c.security_group_id)
    .where(_m.c.instance_uuid.in_(bindparam("uuids", expanding=True)))
    .order_by(_g.c.created_at, _g.c.id)
)
_GROUP_NAMES_OF = prepared(
    select(_m.c.instance_uuid, _g.c.name)
    .join(_g, _g.c.id == _m.c.security_group_id)
    .where(_m.c.instance_uuid.in_(bindparam("uuids", expanding=True)))
    .order_by(_g.c.created_at, _g.c.id)
)
_FORGET = prepared(delete(_m).where(_m.c.instance_uuid == bindparam("uuid")))
_FORGET_GROUP = prepared(delete(_m).where(_m.c.security_group_id == bindparam("id")))
_REMOVE_MEMBER = prepared(
    delete(_m).where(
        _m.c.instance_uuid == bindparam("uuid"), _m.c.security_group_id == bindparam("id")
    )
)


# ------------------------------------------------------------------------------- groups


async def list_groups(db: Executor, project_id: str | None) -> list[Row]:
    """A project's groups (every project's when None), oldest first."""
    if project_id is None:
        return await db.all(_LIST_ALL)
    return await db.all(_LIST_PROJECT, {"project_id": project_id})


async def get_group(db: Executor, group_id: str) -> Row | None:
    return await db.one(_GET, {"id": group_id})


async def default_group(db: Executor, project_id: str) -> Row | None:
    """The project's `default` group, if it has been made."""
    return await db.one(_DEFAULT_OF, {"project_id": project_id})


async def count_groups(db: Executor, project_id: str) -> int:
    return int(await db.scalar(_COUNT_GROUPS, {"project_id": project_id}) or 0)


async def insert_group(db: Executor, values: Mapping[str, Any]) -> None:
    await db.insert(_g, dict(values))


async def update_group(db: Executor, group_id: str, now: str, **changes: Any) -> None:
    """Change name/description; the revision number moves."""
    if changes:
        await db.execute(update(_g).where(_g.c.id == group_id).values(**changes))
    await db.execute(_BUMP, {"id": group_id, "now": now})


async def bump_group(db: Executor, group_id: str, now: str) -> None:
    """A rule of the group changed: its revision number moves (as Neutron's)."""
    await db.execute(_BUMP, {"id": group_id, "now": now})


async def delete_group(db: Executor, group_id: str) -> bool:
    """Delete a group, its rules, the rules of other groups that name it as remote group, and
    its (deleted servers') memberships; False when there was none."""
    await db.execute(_DELETE_RULES_OF, {"id": group_id})
    await db.execute(_FORGET_GROUP, {"id": group_id})
    return await db.execute(_DELETE, {"id": group_id}) > 0


# -------------------------------------------------------------------------------- rules


async def list_rules(db: Executor, project_id: str | None) -> list[Row]:
    """A project's rules (every project's when None), oldest first."""
    if project_id is None:
        return await db.all(_RULES_ALL)
    return await db.all(_RULES_PROJECT, {"project_id": project_id})


async def rules_of_groups(db: Executor, group_ids: list[str]) -> list[Row]:
    """The rules of these groups, oldest first."""
    if not group_ids:
        return []
    return await db.all(_RULES_OF, {"ids": list(group_ids)})


async def groups_referring(db: Executor, group_ids: list[str]) -> list[str]:
    """Ids of the groups with a rule whose remote group is one of these."""
    if not group_ids:
        return []
    rows = await db.all(_RULES_REFERRING, {"ids": list(group_ids)})
    return [row["security_group_id"] for row in rows]


async def get_rule(db: Executor, rule_id: str) -> Row | None:
    return await db.one(_GET_RULE, {"id": rule_id})


async def count_rules(db: Executor, project_id: str) -> int:
    return int(await db.scalar(_COUNT_RULES, {"project_id": project_id}) or 0)


async def insert_rule(db: Executor, values: Mapping[str, Any]) -> None:
    await db.insert(_r, dict(values))


async def delete_rule(db: Executor, rule_id: str) -> bool:
    return await db.execute(_DELETE_RULE, {"id": rule_id}) > 0


# ------------------------------------------------------------------------ memberships


async def members_of_groups(db: Executor, group_ids: list[str]) -> dict[str, list[str]]:
    """Live instance uuids per group (every asked group is a key), oldest instance first."""
    out: dict[str, list[str]] = {gid: [] for gid in group_ids}
    if group_ids:
        for row in await db.all(_MEMBERS_OF, {"ids": list(group_ids)}):
            out[row["security_group_id"]].append(row["instance_uuid"])
    return out


async def hosts_of_groups(db: Executor, group_ids: list[str]) -> list[str]:
    """The hosts of the live members of these groups (servers not placed yet left out)."""
    if not group_ids:
        return []
    rows = await db.all(_MEMBERS_OF, {"ids": list(group_ids)})
    return sorted({row["host"] for row in rows if row["host"]})


async def groups_of_instances(db: Executor, uuids: list[str]) -> dict[str, list[Row]]:
    """Security group rows per instance (every asked uuid is a key), oldest group first."""
    out: dict[str, list[Row]] = {uuid: [] for uuid in uuids}
    if uuids:
        for row in await db.all(_GROUPS_OF, {"uuids": list(uuids)}):
            uuid = row.pop("instance_uuid")
            out[uuid].append(row)
    return out


async def group_names_of_instances(db: Executor, uuids: list[str]) -> dict[str, list[str]]:
    """The names of each instance's security groups (every asked uuid is a key), oldest
    group first; a name two groups share is listed once."""
    out: dict[str, list[str]] = {uuid: [] for uuid in uuids}
    if uuids:
        for row in await db.all(_GROUP_NAMES_OF, {"uuids": list(uuids)}):
            names = out[row["instance_uuid"]]
            if row["name"] not in names:
                names.append(row["name"])
    return out


async def add_member(db: Executor, instance_uuid: str, group_id: str) -> None:
    await db.insert(_m, {"instance_uuid": instance_uuid, "security_group_id": group_id})


async def remove_member(db: Executor, instance_uuid: str, group_id: str) -> bool:
    return await db.execute(_REMOVE_MEMBER, {"uuid": instance_uuid, "id": group_id}) > 0


async def forget_instance(db: Executor, instance_uuid: str) -> None:
    """Drop a deleted server's memberships."""
    await db.execute(_FORGET, {"uuid": instance_uuid})
