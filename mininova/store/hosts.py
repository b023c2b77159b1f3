"""Compute hosts: the `compute_nodes` and `host_credentials` tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select, update

from mininova.store.engine import prepared
from mininova.store.schema import compute_nodes, host_credentials

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row


# ---- agent links and the scheduler (the lead's) ---------------------------------------------

_ALL_NODES = prepared(select(compute_nodes).order_by(compute_nodes.c.host))
_DISCONNECT = prepared(
    update(compute_nodes)
    .where(compute_nodes.c.host == bindparam("h"))
    .values(connected=0, updated_at=bindparam("now"))
)


async def all_nodes(db: Executor) -> list[Row]:
    """Every compute node, in host-name order (the scheduler's one query)."""
    return await db.all(_ALL_NODES)


async def node_connected(
    db: Executor, host: str, resources: Mapping[str, Any], driver: str, now: str
) -> None:
    """An agent said hello: create or refresh its node, connected, heartbeat now."""
    await db.upsert(
        compute_nodes,
        {
            "host": host,
            "hypervisor_hostname": host,
            "hypervisor_type": str(resources.get("hypervisor_type", "fake")),
            "hypervisor_version": int(resources.get("hypervisor_version") or 0),
            "cpu_info": str(resources.get("cpu_info", "{}")),
            "host_ip": str(resources.get("host_ip", "127.0.0.1")),
            "vcpus": int(resources.get("vcpus") or 0),
            "memory_mb": int(resources.get("memory_mb") or 0),
            "local_gb": int(resources.get("local_gb") or 0),
            "driver": driver,
            "connected": 1,
            "last_heartbeat": now,
            "created_at": now,
            "updated_at": now,
        },
        conflict=("host",),
        keep=("hypervisor_hostname", "created_at"),
    )


async def node_disconnected(db: Executor, host: str, now: str) -> None:
    await db.execute(_DISCONNECT, {"h": host, "now": now})


async def record_heartbeats(db: Executor, hosts: Sequence[str], now: str) -> None:
    """The heartbeat sweep: one UPDATE for every host heard from since the last sweep."""
    if hosts:
        await db.execute(
            update(compute_nodes)
            .where(compute_nodes.c.host.in_(list(hosts)))
            .values(last_heartbeat=now, connected=1)
        )


_CREDENTIAL_SEEN = prepared(
    update(host_credentials)
    .where(host_credentials.c.host == bindparam("h"))
    .values(last_seen_at=bindparam("now"))
)


async def credential_seen(db: Executor, host: str, now: str) -> None:
    """The host's credential was just used to say hello."""
    await db.execute(_CREDENTIAL_SEEN, {"h": host, "now": now})


# ---- for server create (the servers engineer's) ---------------------------------------------


async def zone_exists(db: Executor, zone: str) -> bool:
    """Whether any compute node is in availability zone `zone`."""
    found = await db.scalar(select(compute_nodes.c.id).where(compute_nodes.c.zone == zone).limit(1))
    return found is not None


# ---- os-services, os-hypervisors, enrolment (infrastructure) ---------------------------------

_NODES_BY_ID = prepared(select(compute_nodes).order_by(compute_nodes.c.id))
_NODE = prepared(select(compute_nodes).where(compute_nodes.c.host == bindparam("h")))
_SET_DISABLED = prepared(
    update(compute_nodes)
    .where(compute_nodes.c.host == bindparam("h"))
    .values(
        disabled=bindparam("disabled"),
        disabled_reason=bindparam("reason"),
        updated_at=bindparam("now"),
    )
)
_SET_FORCED_DOWN = prepared(
    update(compute_nodes)
    .where(compute_nodes.c.host == bindparam("h"))
    .values(forced_down=bindparam("forced"))
)
_DELETE_NODE = prepared(delete(compute_nodes).where(compute_nodes.c.host == bindparam("h")))
_DISCONNECT_ALL = prepared(update(compute_nodes).values(connected=0))


async def nodes_by_id(db: Executor) -> list[Row]:
    """Every compute node in id order (the os-services / os-hypervisors order): one query."""
    return await db.all(_NODES_BY_ID)


async def get_node(db: Executor, host: str) -> Row | None:
    return await db.one(_NODE, {"h": host})


async def add_node(db: Executor, values: Mapping[str, Any]) -> int:
    """INSERT a compute node row given as a dict (columns left out take their defaults)."""
    row = await db.insert(compute_nodes, dict(values), returning=("id",))
    return int(row["id"])


async def set_disabled(
    db: Executor, host: str, disabled: bool, reason: str | None, now: str
) -> bool:
    """Enable or disable a host's compute service (the reason is dropped when enabling)."""
    params = {"h": host, "disabled": int(disabled), "reason": reason if disabled else None}
    return await db.execute(_SET_DISABLED, {**params, "now": now}) > 0


async def set_forced_down(db: Executor, host: str, forced: bool) -> bool:
    return await db.execute(_SET_FORCED_DOWN, {"h": host, "forced": int(forced)}) > 0


async def delete_node(db: Executor, host: str) -> bool:
    return await db.execute(_DELETE_NODE, {"h": host}) > 0


async def disconnect_all(db: Executor) -> None:
    """Controller start: no agent is connected yet."""
    await db.execute(_DISCONNECT_ALL)


_CREDENTIAL_BY_HASH = prepared(
    select(host_credentials.c.host, host_credentials.c.revoked_at).where(
        host_credentials.c.credential_hash == bindparam("hash")
    )
)
_BOUND = prepared(
    select(host_credentials.c.host).where(
        host_credentials.c.host == bindparam("h"), host_credentials.c.revoked_at.is_(None)
    )
)
_REVOKE_CREDENTIAL = prepared(
    update(host_credentials)
    .where(host_credentials.c.host == bindparam("h"), host_credentials.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


async def credential_by_hash(db: Executor, credential_hash: str) -> Row | None:
    """host and revoked_at of the credential with this hash."""
    return await db.one(_CREDENTIAL_BY_HASH, {"hash": credential_hash})


async def host_is_bound(db: Executor, host: str) -> bool:
    """Whether `host` has a credential that is not revoked."""
    return await db.one(_BOUND, {"h": host}) is not None


async def bind_credential(
    db: Executor, host: str, credential_hash: str, join_token_id: str, now: str
) -> None:
    """Give `host` a new credential (replacing a revoked one)."""
    await db.upsert(
        host_credentials,
        {
            "host": host,
            "credential_hash": credential_hash,
            "join_token_id": join_token_id,
            "created_at": now,
            "last_seen_at": None,
            "revoked_at": None,
        },
        conflict=("host",),
    )


async def revoke_credential(db: Executor, host: str, now: str) -> bool:
    """Revoke the host's credential; False if it had none that was valid."""
    return await db.execute(_REVOKE_CREDENTIAL, {"h": host, "now": now}) > 0
