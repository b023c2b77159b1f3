"""Compute hosts: the `compute_nodes` and `host_credentials` tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from mininova.store.engine import prepared
from mininova.store.schema import compute_nodes, host_credentials

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row


# ---- agent links and the scheduler (the lead's) ---------------------------------------------

_ALL_NODES = prepared(select(compute_nodes).order_by(compute_nodes.c.host))
_CONNECTED = prepared(
    select(compute_nodes.c.host, compute_nodes.c.last_heartbeat).where(
        compute_nodes.c.connected == 1
    )
)
_DISCONNECT = prepared(
    update(compute_nodes)
    .where(compute_nodes.c.host == bindparam("h"))
    .values(connected=0, updated_at=bindparam("now"))
)


async def all_nodes(db: Executor) -> list[Row]:
    """Every compute node, in host-name order (the scheduler's one query)."""
    return await db.all(_ALL_NODES)


async def connected_nodes(db: Executor) -> list[Row]:
    """host and last_heartbeat of the nodes marked connected."""
    return await db.all(_CONNECTED)


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
