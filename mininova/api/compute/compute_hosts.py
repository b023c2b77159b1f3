"""Compute hosts as Nova shows them: services, hypervisors and availability zones.

One `nova-compute` service and one hypervisor per `compute_nodes` row; the controller itself
contributes `nova-conductor` and `nova-scheduler` (zone "internal", always up). Service ids:
conductor 1, scheduler 2, compute node n → n + 2 (ints below 2.53, stable uuid5 values from
2.53). Hypervisor ids: the compute node id, or a uuid5 of its host.

The functions here are what the os-services, os-hypervisors and os-availability-zone handlers
call; each answers with a constant number of queries, whatever the number of hosts. Queries
live in `mininova.store.hosts`, `.allocations` and `.instances`.
"""

from __future__ import annotations

import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from mininova.config import ServeConfig
from mininova.errors import Conflict, Invalid, NotFound
from mininova.hosts import is_up
from mininova.store import allocations, hosts, instances
from mininova.store.db import Row, Store
from mininova.timeutil import now_iso
from mininova.trust import enrolment

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "mininova")
INTERNAL_ZONE = "internal"
COMPUTE = "nova-compute"
CONTROLLER_BINARIES = ("nova-conductor", "nova-scheduler")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


class HostRevoker(Protocol):
    """The agent hub: revokes a host's credential and drops its live link."""

    async def revoke_host(self, host: str) -> bool: ...


def controller_host(config: ServeConfig) -> str:
    return str(config.extra.get("host") or socket.gethostname())


def service_uuid(host: str, binary: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"service:{host}:{binary}"))


def hypervisor_uuid(host: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"hypervisor:{host}"))


def parse_uuid(text: str) -> str | None:
    """The canonical form of a uuid (dashes optional, any case); None if it is not one."""
    if not _UUID_RE.match(text):
        return None
    return str(uuid.UUID(text))


def node_up(node: Row, config: ServeConfig) -> bool:
    """A compute node is up while its agent heartbeats, unless an admin forced it down."""
    return not node["forced_down"] and is_up(node, config)


# ----------------------------------------------------------------- services


def service_records(nodes: list[Row], config: ServeConfig) -> list[dict[str, Any]]:
    """The service records (dicts: id, uuid, binary, host, zone, disabled, up, …) of the
    controller and of `nodes`."""
    host = controller_host(config)
    now = now_iso()
    records: list[dict[str, Any]] = [
        {
            "id": number,
            "uuid": service_uuid(host, binary),
            "binary": binary,
            "host": host,
            "zone": INTERNAL_ZONE,
            "disabled": False,
            "disabled_reason": None,
            "up": True,
            "forced_down": False,
            "updated_at": now,
        }
        for number, binary in enumerate(CONTROLLER_BINARIES, start=1)
    ]
    for node in nodes:
        records.append(
            {
                "id": int(node["id"]) + 2,
                "uuid": service_uuid(node["host"], COMPUTE),
                "binary": COMPUTE,
                "host": node["host"],
                "zone": node["zone"],
                "disabled": bool(node["disabled"]),
                "disabled_reason": node["disabled_reason"],
                "up": node_up(node, config),
                "forced_down": bool(node["forced_down"]),
                "updated_at": node["last_heartbeat"] or node["updated_at"] or node["created_at"],
            }
        )
    return records


async def list_services(
    store: Store, config: ServeConfig, host: str | None = None, binary: str | None = None
) -> list[dict[str, Any]]:
    """Every service record (one query), optionally only those of `host` and/or `binary`."""
    records = service_records(await hosts.nodes_by_id(store), config)
    return [
        r
        for r in records
        if (host is None or r["host"] == host) and (binary is None or r["binary"] == binary)
    ]


async def find_service(
    store: Store, config: ServeConfig, service_id: str, *, by_uuid: bool
) -> dict[str, Any]:
    """The service with this id (a uuid from 2.53, an int before); Invalid / NotFound."""
    records = await list_services(store, config)
    if by_uuid:
        wanted = parse_uuid(service_id)
        if wanted is None:
            raise Invalid(f"Invalid uuid {service_id}")
        match = [r for r in records if r["uuid"] == wanted]
    else:
        try:
            number = int(service_id)
        except ValueError:
            raise Invalid(f"Invalid ID {service_id}") from None
        match = [r for r in records if r["id"] == number]
    if not match:
        raise NotFound(f"Service {service_id} could not be found.")
    return match[0]


def require_compute(service: dict[str, Any], what: str = "Updating") -> None:
    """Only nova-compute services can be changed (Invalid for the controller's)."""
    if service["binary"] != COMPUTE:
        if what == "Deleting":
            raise Invalid(f"Deleting a {service['binary']} service is not supported.")
        raise Invalid(
            f"Updating a {service['binary']} service is not supported. Only "
            "nova-compute services can be updated."
        )


async def find_legacy_service(
    store: Store, config: ServeConfig, host: str, binary: str
) -> dict[str, Any]:
    """The service of `binary` on `host` (the pre-2.53 actions name it so)."""
    records = await list_services(store, config, host=host, binary=binary)
    if not records:
        raise NotFound(f"Service {binary} on host {host} could not be found.")
    require_compute(records[0])
    return records[0]


async def update_compute_service(
    store: Store,
    host: str,
    *,
    disabled: bool | None = None,
    disabled_reason: str | None = None,
    forced_down: bool | None = None,
) -> None:
    """Enable/disable a host (None: unchanged) and/or force it down or back up."""
    async with store.transaction() as tx:
        if disabled is not None:
            await hosts.set_disabled(tx, host, disabled, disabled_reason, now_iso())
        if forced_down is not None:
            await hosts.set_forced_down(tx, host, forced_down)


async def delete_compute_service(store: Store, hub: HostRevoker | None, host: str) -> None:
    """Forget a compute host: refused while it hosts instances; its credential is revoked,
    so it must enrol again with a new join token."""
    busy = await instances.count_live_on_host(store, host)
    if busy:
        raise Conflict(
            "Unable to delete compute service that is hosting instances. "
            f"Migrate or delete the instances first. ({busy} instances)"
        )
    if hub is not None:
        await hub.revoke_host(host)
    else:
        await enrolment.revoke_host(store, host)
    await hosts.delete_node(store, host)


# ----------------------------------------------------------------- hypervisors


@dataclass(frozen=True)
class Usage:
    """What a host's claims and instances use (os-hypervisors' *_used fields)."""

    running_vms: int = 0
    vcpus_used: int = 0
    memory_mb_used: int = 0
    local_gb_used: int = 0
    current_workload: int = 0


@dataclass(frozen=True)
class Hypervisor:
    """One compute node as a hypervisor: what its views render."""

    node: Row
    up: bool
    usage: Usage
    servers: list[Row] | None = None  # id and uuid of its instances, when asked for


async def usage_by_host(store: Store) -> dict[str, Usage]:
    """Usage of every host in two aggregates (claims, busy instances)."""
    claims = await allocations.usage_by_host(store)
    busy = await instances.busy_by_host(store)
    return {
        host: Usage(
            running_vms=int(claims.get(host, {}).get("instances") or 0),
            vcpus_used=int(claims.get(host, {}).get("vcpus") or 0),
            memory_mb_used=int(claims.get(host, {}).get("memory_mb") or 0),
            local_gb_used=int(claims.get(host, {}).get("disk_gb") or 0),
            current_workload=busy.get(host, 0),
        )
        for host in set(claims) | set(busy)
    }


async def nodes(store: Store, pattern: str | None = None) -> list[Row]:
    """Compute nodes in id order; with `pattern`, those whose hypervisor hostname contains it
    (case-insensitive), NotFound when none does."""
    found = await hosts.nodes_by_id(store)
    if pattern is not None:
        found = [n for n in found if pattern.lower() in n["hypervisor_hostname"].lower()]
        if not found:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return found


async def hypervisors(
    store: Store,
    config: ServeConfig,
    page: list[Row],
    *,
    with_usage: bool,
    with_servers: bool,
) -> list[Hypervisor]:
    """`page` (compute nodes) as hypervisors: at most three queries for any number."""
    usage = await usage_by_host(store) if with_usage else {}
    servers = (
        await instances.servers_on_hosts(store, [n["host"] for n in page]) if with_servers else {}
    )
    return [
        Hypervisor(
            node=node,
            up=node_up(node, config),
            usage=usage.get(node["host"], Usage()),
            servers=servers.get(node["host"]) if with_servers else None,
        )
        for node in page
    ]


async def find_node(store: Store, hypervisor_id: str, *, by_uuid: bool) -> Row:
    """The compute node of a hypervisor id (a uuid from 2.53); Invalid / NotFound."""
    all_nodes = await hosts.nodes_by_id(store)
    if by_uuid:
        wanted = parse_uuid(hypervisor_id)
        if wanted is None:
            raise Invalid(f"Invalid uuid {hypervisor_id}")
        match = [n for n in all_nodes if hypervisor_uuid(n["host"]) == wanted]
    else:
        match = [n for n in all_nodes if str(n["id"]) == hypervisor_id]
    if not match:
        raise NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    return match[0]


STATISTICS = (
    "count",
    "vcpus",
    "memory_mb",
    "local_gb",
    "vcpus_used",
    "memory_mb_used",
    "local_gb_used",
    "free_ram_mb",
    "free_disk_gb",
    "current_workload",
    "running_vms",
    "disk_available_least",
)


async def statistics(store: Store) -> dict[str, int]:
    """The sums over every hypervisor (three queries)."""
    stats = dict.fromkeys(STATISTICS, 0)
    usage = await usage_by_host(store)
    for node in await hosts.nodes_by_id(store):
        used = usage.get(node["host"], Usage())
        vcpus, ram, disk = int(node["vcpus"]), int(node["memory_mb"]), int(node["local_gb"])
        stats["count"] += 1
        stats["vcpus"] += vcpus
        stats["memory_mb"] += ram
        stats["local_gb"] += disk
        stats["vcpus_used"] += used.vcpus_used
        stats["memory_mb_used"] += used.memory_mb_used
        stats["local_gb_used"] += used.local_gb_used
        stats["current_workload"] += used.current_workload
        stats["running_vms"] += used.running_vms
        stats["free_ram_mb"] += ram - used.memory_mb_used
        stats["free_disk_gb"] += disk - used.local_gb_used
        stats["disk_available_least"] += disk - used.local_gb_used
    return stats


# ----------------------------------------------------------------- availability zones


@dataclass(frozen=True)
class Zones:
    available: list[str]  # zones with an enabled host
    unavailable: list[str]
    services: list[dict[str, Any]]  # every service record (for the detail view)


async def zones(store: Store, config: ServeConfig) -> Zones:
    """The availability zones of the compute nodes (one query)."""
    all_nodes = await hosts.nodes_by_id(store)
    available = sorted({n["zone"] for n in all_nodes if not n["disabled"]})
    unavailable = sorted({n["zone"] for n in all_nodes} - set(available))
    return Zones(available, unavailable, service_records(all_nodes, config))
