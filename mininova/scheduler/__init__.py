"""nova-scheduler: filter hosts, weigh them, and claim resources atomically.

Filters: enabled, up, availability zone, free vCPU/RAM/disk under the allocation ratios, and
the server group policy (affinity: only hosts that already hold a member, any host while none
does; anti-affinity: no host that holds `max_server_per_host` members, default 1).
Weigher: spread by free RAM (most free first); the soft-* group policies never filter, they
only put the hosts with the most (soft-affinity) or fewest (soft-anti-affinity) members first.
Members are located by their allocations, so the group check is atomic with the claims. `select_and_claim` runs inside one store
transaction, so two concurrent builds can never both take the last slot of a host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mininova.config import ServeConfig
from mininova.errors import NoValidHost
from mininova.hosts import is_up
from mininova.store import Store
from mininova.store.db import loads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    exclude: tuple[str, ...] = ()
    force_host: str | None = None
    group: str | None = None


@dataclass
class GroupState:
    """A server group as the scheduler sees it: policy, rule and members per host."""

    policy: str
    max_per_host: int
    members: dict[str, int]  # host → members of the group (other than this instance) there


@dataclass
class HostState:
    host: str
    free_vcpus: float
    free_ram_mb: float
    free_disk_gb: float
    reasons: list[str]


def host_state(node: dict, used: dict[str, int]) -> HostState:
    return HostState(
        host=node["host"],
        free_vcpus=node["vcpus"] * node["cpu_allocation_ratio"] - used.get("vcpus", 0),
        free_ram_mb=node["memory_mb"] * node["ram_allocation_ratio"] - used.get("memory_mb", 0),
        free_disk_gb=node["local_gb"] * node["disk_allocation_ratio"] - used.get("disk_gb", 0),
        reasons=[],
    )


def _group_ok(host: str, group: GroupState | None) -> tuple[bool, str]:
    if group is None:
        return True, ""
    if group.policy == "affinity":
        return (
            not group.members or host in group.members,
            "server group affinity (members run on other hosts)",
        )
    if group.policy == "anti-affinity":
        return (
            group.members.get(host, 0) < group.max_per_host,
            f"server group anti-affinity (max {group.max_per_host} per host)",
        )
    return True, ""


def filter_host(
    node: dict, state: HostState, req: Request, up: bool, group: GroupState | None = None
) -> bool:
    """Apply every filter; the reasons a host failed are kept for the fault message."""
    group_ok, group_reason = _group_ok(node["host"], group)
    checks = (
        (not node["disabled"], "disabled"),
        (up, "down"),
        (node["host"] not in req.exclude, "already tried"),
        (req.force_host in (None, node["host"]), "not the requested host"),
        (req.availability_zone in (None, "", node["zone"]), "other availability zone"),
        (state.free_vcpus >= req.vcpus, "not enough vCPUs"),
        (state.free_ram_mb >= req.memory_mb, "not enough RAM"),
        (state.free_disk_gb >= req.disk_gb, "not enough disk"),
        (group_ok, group_reason),
    )
    state.reasons = [reason for ok, reason in checks if not ok]
    return not state.reasons


def weigh(states: list[HostState], group: GroupState | None = None) -> list[HostState]:
    """Spread: the host with the most free RAM first, host name as the tie-breaker; a soft
    group policy comes first (most members for soft-affinity, fewest for soft-anti)."""

    def members(s: HostState) -> int:
        if group is None:
            return 0
        count = group.members.get(s.host, 0)
        if group.policy == "soft-affinity":
            return -count
        if group.policy == "soft-anti-affinity":
            return count
        return 0

    return sorted(states, key=lambda s: (members(s), -s.free_ram_mb, s.host))


async def load_group(store: Any, group_id: str | None, instance_uuid: str) -> GroupState | None:
    """The group's policy and where its other members hold allocations (None: no group)."""
    if not group_id:
        return None
    row = await store.fetchone("SELECT policy, rules FROM server_groups WHERE id = ?", (group_id,))
    if row is None:
        return None
    rules = loads(row["rules"], {}) or {}
    counts = await store.fetchall(
        "SELECT a.host AS host, COUNT(*) AS n FROM server_group_members m"
        " JOIN allocations a ON a.instance_uuid = m.instance_uuid"
        " WHERE m.group_id = ? AND m.instance_uuid != ? GROUP BY a.host",
        (group_id, instance_uuid),
    )
    return GroupState(
        policy=row["policy"],
        max_per_host=int(rules.get("max_server_per_host") or 1),
        members={c["host"]: int(c["n"]) for c in counts},
    )


class Scheduler:
    def __init__(self, store: Store, config: ServeConfig) -> None:
        self.store = store
        self.config = config

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "select_and_claim":
            return await self.select_and_claim(Request(**params))
        if method == "release":
            return await self.release(params["instance_uuid"])
        raise LookupError(f"scheduler has no method {method!r}")

    async def select_and_claim(self, req: Request) -> str:
        store = self.store
        async with store.transaction():
            nodes = await store.fetchall("SELECT * FROM compute_nodes ORDER BY host")
            usage = await store.fetchall(
                "SELECT host, SUM(vcpus) AS vcpus, SUM(memory_mb) AS memory_mb,"
                " SUM(disk_gb) AS disk_gb FROM allocations WHERE instance_uuid != ?"
                " GROUP BY host",
                (req.instance_uuid,),
            )
            used = {u["host"]: u for u in usage}
            group = await load_group(store, req.group, req.instance_uuid)
            passed: list[HostState] = []
            rejected: list[HostState] = []
            for node in nodes:
                state = host_state(node, used.get(node["host"], {}))
                if filter_host(node, state, req, is_up(node, self.config), group):
                    passed.append(state)
                else:
                    rejected.append(state)
            if not passed:
                detail = "; ".join(f"{s.host}: {', '.join(s.reasons)}" for s in rejected)
                raise NoValidHost(
                    "No valid host was found. "
                    + (f"Hosts rejected: {detail}" if detail else "There are no compute hosts.")
                )
            chosen = weigh(passed, group)[0].host
            await store.execute(
                "INSERT INTO allocations (instance_uuid, host, vcpus, memory_mb, disk_gb)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(instance_uuid) DO UPDATE SET"
                " host=excluded.host, vcpus=excluded.vcpus, memory_mb=excluded.memory_mb,"
                " disk_gb=excluded.disk_gb",
                (req.instance_uuid, chosen, req.vcpus, req.memory_mb, req.disk_gb),
            )
        log.info("scheduled %s on %s", req.instance_uuid, chosen)
        return chosen

    async def release(self, instance_uuid: str) -> None:
        await self.store.execute(
            "DELETE FROM allocations WHERE instance_uuid = ?", (instance_uuid,)
        )
