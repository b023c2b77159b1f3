"""The reads behind a host's desired network state, and the delete-time network clean-up.

Reads the security group and floating IP tables directly (schema migration 0005), so the
host firewall does not depend on the API-side store modules. Instance `addresses` come back
decoded (the agent-reported [{"version", "addr", "mac"}] list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select

from mininova.store import floating_ips as floating_ip_records
from mininova.store import security_groups as security_group_records
from mininova.store.db import loads
from mininova.store.engine import prepared
from mininova.store.schema import (
    floating_ips,
    instance_security_groups,
    instances,
    security_group_rules,
    security_groups,
    subnets,
)

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_i = instances
_m = instance_security_groups
_f = floating_ips
_INSTANCE_COLUMNS = (_i.c.uuid, _i.c.project_id, _i.c.mac_address, _i.c.addresses, _i.c.host)
_LIVE_ON_HOST = (
    select(*_INSTANCE_COLUMNS)
    .where(_i.c.host == bindparam("host"), _i.c.deleted == 0)
    .order_by(_i.c.id)
)
_ON_HOST = prepared(_LIVE_ON_HOST)
_LIVE_AMONG = prepared(
    select(*_INSTANCE_COLUMNS)
    .where(_i.c.uuid.in_(bindparam("uuids", expanding=True)), _i.c.deleted == 0)
    .order_by(_i.c.id)
)
_MEMBERSHIPS = prepared(
    select(_m.c.instance_uuid, _m.c.security_group_id).where(
        _m.c.instance_uuid.in_(bindparam("uuids", expanding=True))
    )
)
_DEFAULT_GROUPS = prepared(
    select(security_groups.c.id, security_groups.c.project_id).where(
        security_groups.c.project_id.in_(bindparam("projects", expanding=True)),
        security_groups.c.is_default == 1,
    )
)
_GROUP_PROJECTS = prepared(
    select(security_groups.c.id, security_groups.c.project_id, security_groups.c.is_default).where(
        security_groups.c.id.in_(bindparam("ids", expanding=True))
    )
)
_RULES = prepared(
    select(security_group_rules)
    .where(security_group_rules.c.security_group_id.in_(bindparam("ids", expanding=True)))
    .order_by(security_group_rules.c.created_at, security_group_rules.c.id)
)
# What a remote group's member contributes: its fixed IPs, in instance id order.
_MEMBER_COLUMNS = (_i.c.id, _i.c.uuid, _i.c.project_id, _i.c.addresses)
_MEMBERS = prepared(
    select(_m.c.security_group_id, *_MEMBER_COLUMNS)
    .join(_i, (_i.c.uuid == _m.c.instance_uuid) & (_i.c.deleted == 0))
    .where(_m.c.security_group_id.in_(bindparam("ids", expanding=True)))
    .order_by(_i.c.id)
)
# Live instances of these projects that are in no group at all (the default group's members).
_UNGROUPED = prepared(
    select(*_MEMBER_COLUMNS)
    .where(
        _i.c.project_id.in_(bindparam("projects", expanding=True)),
        _i.c.deleted == 0,
        ~select(_m.c.instance_uuid).where(_m.c.instance_uuid == _i.c.uuid).exists(),
    )
    .order_by(_i.c.id)
)
_MEMBER_STATE = prepared(
    select(*_MEMBER_COLUMNS, _i.c.deleted).where(_i.c.uuid.in_(bindparam("uuids", expanding=True)))
)
_FLOATING = prepared(
    select(
        _f.c.id,
        _f.c.instance_uuid,
        _f.c.floating_ip_address,
        _f.c.fixed_ip_address,
        subnets.c.cidr,
    )
    .join(subnets, subnets.c.id == _f.c.subnet_id, isouter=True)
    .where(_f.c.instance_uuid.in_(bindparam("uuids", expanding=True)))
    .order_by(_f.c.floating_ip_address)
)
_HOST_OF = prepared(select(_i.c.host).where(_i.c.uuid == bindparam("uuid")))


def _decoded(rows: list[Row]) -> list[Row]:
    out = []
    for row in rows:
        item = dict(row)
        item["addresses"] = loads(item.get("addresses"), []) or []
        out.append(item)
    return out


async def instances_on_host(db: Executor, host: str) -> list[Row]:
    """Live instances placed on `host`: uuid, project_id, mac_address, addresses, host."""
    return _decoded(await db.all(_ON_HOST, {"host": host}))


async def live_instances_among(db: Executor, uuids: list[str]) -> list[Row]:
    """Those of `uuids` that are live instances, wherever placed (as instances_on_host)."""
    if not uuids:
        return []
    return _decoded(await db.all(_LIVE_AMONG, {"uuids": uuids}))


async def memberships(db: Executor, uuids: list[str]) -> dict[str, list[str]]:
    """instance uuid -> its security group ids (an instance in no group is left out)."""
    out: dict[str, list[str]] = {}
    if uuids:
        for row in await db.all(_MEMBERSHIPS, {"uuids": uuids}):
            out.setdefault(row["instance_uuid"], []).append(row["security_group_id"])
    return out


async def default_groups(db: Executor, project_ids: list[str]) -> dict[str, str]:
    """project id -> the id of its `default` group, for the projects that have one."""
    if not project_ids:
        return {}
    rows = await db.all(_DEFAULT_GROUPS, {"projects": project_ids})
    return {row["project_id"]: row["id"] for row in rows}


async def groups(db: Executor, group_ids: list[str]) -> dict[str, Row]:
    """group id -> {id, project_id, is_default} for the groups that exist."""
    if not group_ids:
        return {}
    return {row["id"]: dict(row) for row in await db.all(_GROUP_PROJECTS, {"ids": group_ids})}


async def rules(db: Executor, group_ids: list[str]) -> list[Row]:
    """The rules of these groups, oldest first."""
    return await db.all(_RULES, {"ids": group_ids}) if group_ids else []


async def members(db: Executor, group_ids: list[str]) -> dict[str, list[Row]]:
    """group id -> its live member instances (any host), by explicit membership: id, uuid,
    project_id and addresses, in id order."""
    out: dict[str, list[Row]] = {}
    if group_ids:
        for row in _decoded(await db.all(_MEMBERS, {"ids": group_ids})):
            out.setdefault(row.pop("security_group_id"), []).append(row)
    return out


async def ungrouped(db: Executor, project_ids: list[str]) -> dict[str, list[Row]]:
    """project id -> its live instances that are in no security group (any host), as
    `members` reads them."""
    out: dict[str, list[Row]] = {}
    if project_ids:
        for row in _decoded(await db.all(_UNGROUPED, {"projects": project_ids})):
            out.setdefault(row["project_id"], []).append(row)
    return out


async def member_state(db: Executor, uuids: list[str]) -> dict[str, Row]:
    """uuid -> what decides these instances' part in remote groups, deleted ones too: id,
    project_id, addresses (decoded) and deleted; a uuid without a row is left out."""
    if not uuids:
        return {}
    return {row["uuid"]: row for row in _decoded(await db.all(_MEMBER_STATE, {"uuids": uuids}))}


async def floating_of(db: Executor, uuids: list[str]) -> dict[str, list[Row]]:
    """instance uuid -> its associated floating IPs (id, addresses, the subnet's cidr)."""
    out: dict[str, list[Row]] = {}
    if uuids:
        for row in await db.all(_FLOATING, {"uuids": uuids}):
            out.setdefault(row["instance_uuid"], []).append(dict(row))
    return out


async def host_of(db: Executor, uuid: str) -> str | None:
    """The host an instance (deleted too) was placed on."""
    return await db.scalar(_HOST_OF, {"uuid": uuid})


async def release_instance(db: Executor, uuid: str) -> None:
    """A deleted server's network clean-up: disassociate its floating IPs, forget its
    security group memberships."""
    await floating_ip_records.clear_instance(db, uuid)
    await security_group_records.forget_instance(db, uuid)


_PROJECT_GROUPS = prepared(
    select(security_groups.c.id).where(
        security_groups.c.project_id.in_(bindparam("projects", expanding=True))
    )
)


async def groups_of_projects(db: Executor, project_ids: list[str]) -> list[str]:
    """The ids of the projects' security groups."""
    if not project_ids:
        return []
    return sorted(row["id"] for row in await db.all(_PROJECT_GROUPS, {"projects": project_ids}))
