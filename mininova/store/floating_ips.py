"""Floating IPs (table `floating_ips`): an address of an external network's subnet, owned by a
project, and — while associated — the server port and fixed IP it maps to.

`instance_uuid` is stored next to `port_id` (ports are derived from servers, not stored) so a
server's floating IPs and a host's associated ones are one query each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, select, update

from mininova.store.engine import prepared
from mininova.store.schema import floating_ips
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_f = floating_ips
_ORDER = (_f.c.created_at, _f.c.id)

_LIST_ALL = prepared(select(_f).order_by(*_ORDER))
_LIST_PROJECT = prepared(
    select(_f).where(_f.c.project_id == bindparam("project")).order_by(*_ORDER)
)
_GET = prepared(select(_f).where(_f.c.id == bindparam("id")))
_DELETE = prepared(delete(_f).where(_f.c.id == bindparam("id")))
_ADDRESSES = prepared(
    select(_f.c.floating_ip_address).where(_f.c.floating_network_id == bindparam("network"))
)
_COUNT_PROJECT = prepared(
    select(func.count().label("n")).where(_f.c.project_id == bindparam("project"))
)
_COUNT_NETWORK = prepared(
    select(func.count().label("n")).where(_f.c.floating_network_id == bindparam("network"))
)
_COUNT_SUBNET = prepared(select(func.count().label("n")).where(_f.c.subnet_id == bindparam("id")))
_ON_FIXED_IP = prepared(
    select(_f).where(
        _f.c.floating_network_id == bindparam("network"),
        _f.c.port_id == bindparam("port"),
        _f.c.fixed_ip_address == bindparam("fixed"),
    )
)
_OF_INSTANCE = prepared(select(_f).where(_f.c.instance_uuid == bindparam("uuid")))
_OF_INSTANCES = prepared(
    select(_f).where(_f.c.instance_uuid.in_(bindparam("uuids", expanding=True))).order_by(*_ORDER)
)
_SET_ASSOCIATION = prepared(
    update(_f)
    .where(_f.c.id == bindparam("id"))
    .values(
        port_id=bindparam("v_port"),
        instance_uuid=bindparam("v_instance"),
        fixed_ip_address=bindparam("v_fixed"),
        revision_number=_f.c.revision_number + 1,
        updated_at=bindparam("v_now"),
    )
)
_SET_DESCRIPTION = prepared(
    update(_f)
    .where(_f.c.id == bindparam("id"))
    .values(
        description=bindparam("v_description"),
        revision_number=_f.c.revision_number + 1,
        updated_at=bindparam("v_now"),
    )
)
_CLEAR_INSTANCE = prepared(
    update(_f)
    .where(_f.c.instance_uuid == bindparam("uuid"))
    .values(
        port_id=None,
        instance_uuid=None,
        fixed_ip_address=None,
        revision_number=_f.c.revision_number + 1,
        updated_at=bindparam("v_now"),
    )
)


async def list_floating_ips(db: Executor, project_id: str | None = None) -> list[Row]:
    """Every floating IP (of one project when `project_id` is given), oldest first."""
    if project_id is None:
        return await db.all(_LIST_ALL)
    return await db.all(_LIST_PROJECT, {"project": project_id})


async def get(db: Executor, fip_id: str) -> Row | None:
    return await db.one(_GET, {"id": fip_id})


async def insert(db: Executor, values: Mapping[str, Any]) -> None:
    await db.insert(floating_ips, dict(values))


async def delete_floating_ip(db: Executor, fip_id: str) -> bool:
    return await db.execute(_DELETE, {"id": fip_id}) > 0


async def addresses_in_use(db: Executor, network_id: str) -> set[str]:
    """The addresses of `network_id` that floating IPs hold."""
    rows = await db.all(_ADDRESSES, {"network": network_id})
    return {row["floating_ip_address"] for row in rows}


async def count_in_project(db: Executor, project_id: str) -> int:
    return int(await db.scalar(_COUNT_PROJECT, {"project": project_id}) or 0)


async def count_on_network(db: Executor, network_id: str) -> int:
    return int(await db.scalar(_COUNT_NETWORK, {"network": network_id}) or 0)


async def count_on_subnet(db: Executor, subnet_id: str) -> int:
    """How many floating IPs were allocated from this subnet."""
    return int(await db.scalar(_COUNT_SUBNET, {"id": subnet_id}) or 0)


async def on_fixed_ip(db: Executor, network_id: str, port_id: str, fixed_ip: str) -> Row | None:
    """The floating IP of `network_id` already mapped to this port's fixed IP, if any."""
    return await db.one(_ON_FIXED_IP, {"network": network_id, "port": port_id, "fixed": fixed_ip})


async def associate(
    db: Executor, fip_id: str, port_id: str, instance_uuid: str, fixed_ip: str
) -> bool:
    """Map a floating IP to a server port's fixed IP (a new revision)."""
    params = {
        "id": fip_id,
        "v_port": port_id,
        "v_instance": instance_uuid,
        "v_fixed": fixed_ip,
        "v_now": now_iso(),
    }
    return await db.execute(_SET_ASSOCIATION, params) > 0


async def disassociate(db: Executor, fip_id: str) -> bool:
    """Clear a floating IP's port, instance and fixed IP (a new revision)."""
    params = {"id": fip_id, "v_port": None, "v_instance": None, "v_fixed": None}
    return await db.execute(_SET_ASSOCIATION, {**params, "v_now": now_iso()}) > 0


async def set_description(db: Executor, fip_id: str, description: str) -> bool:
    params = {"id": fip_id, "v_description": description, "v_now": now_iso()}
    return await db.execute(_SET_DESCRIPTION, params) > 0


async def disassociate_instance(db: Executor, instance_uuid: str) -> list[Row]:
    """Clear port, instance and fixed IP of every floating IP of a (deleted) server.

    Returns the rows it changed as they were before (their fixed IP included), so a caller
    can tell the server's host which NAT mappings went away; [] when there were none."""
    async with getattr(db, "store", db).transaction() as tx:
        rows = await tx.all(_OF_INSTANCE, {"uuid": instance_uuid})
        if rows:
            await clear_instance(tx, instance_uuid)
    return rows


async def clear_instance(db: Executor, instance_uuid: str) -> None:
    """Disassociate every floating IP of a server (in the caller's transaction)."""
    await db.execute(_CLEAR_INSTANCE, {"uuid": instance_uuid, "v_now": now_iso()})


async def floating_ips_of_instances(db: Executor, uuids: list[str]) -> dict[str, list[Row]]:
    """The associated floating IPs of each of `uuids` (one query; [] for a server without)."""
    found: dict[str, list[Row]] = {uuid: [] for uuid in uuids}
    if uuids:
        for row in await db.all(_OF_INSTANCES, {"uuids": list(uuids)}):
            found.setdefault(row["instance_uuid"], []).append(row)
    return found
