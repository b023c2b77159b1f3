"""The scheduler's filters and weigher as plain functions of host state (no store, no I/O).

Filters: enabled, up, not already tried, the forced host, availability zone, free vCPU/RAM/disk
under the allocation ratios, and the server group policy (affinity: only hosts that already
hold a member, any host while none does; anti-affinity: no host that holds
`max_server_per_host` members, default 1). The weigher spreads by free RAM (most free first,
host name as tie-breaker); soft-* group policies never filter, they only put the hosts with the
most (soft-affinity) or fewest (soft-anti-affinity) members first.

`filter_host`/`weigh` are the reference: they keep the reasons a host failed, for the fault
message. `HostStates.choose` (state.py) makes the same decision in one tight loop (or from
a heap of the hosts by free RAM, for a plain request).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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


def group_allows(host: str, group: GroupState | None) -> bool:
    if group is None:
        return True
    if group.policy == "affinity":
        return not group.members or host in group.members
    if group.policy == "anti-affinity":
        return group.members.get(host, 0) < group.max_per_host
    return True


def _group_reason(group: GroupState | None) -> str:
    if group is not None and group.policy == "affinity":
        return "server group affinity (members run on other hosts)"
    if group is not None and group.policy == "anti-affinity":
        return f"server group anti-affinity (max {group.max_per_host} per host)"
    return ""


@dataclass(frozen=True)
class Check:
    """One named filter: does `node`/`state` pass for `req`?"""

    reason: Callable[[GroupState | None], str]
    passes: Callable[[dict, HostState, Request, bool, GroupState | None], bool]


def _fixed(text: str) -> Callable[[GroupState | None], str]:
    return lambda _group: text


FILTERS: tuple[Check, ...] = (
    Check(_fixed("disabled"), lambda n, s, r, up, g: not n["disabled"]),
    Check(_fixed("down"), lambda n, s, r, up, g: up),
    Check(_fixed("already tried"), lambda n, s, r, up, g: n["host"] not in r.exclude),
    Check(
        _fixed("not the requested host"),
        lambda n, s, r, up, g: r.force_host in (None, n["host"]),
    ),
    Check(
        _fixed("other availability zone"),
        lambda n, s, r, up, g: r.availability_zone in (None, "", n["zone"]),
    ),
    Check(_fixed("not enough vCPUs"), lambda n, s, r, up, g: s.free_vcpus >= r.vcpus),
    Check(_fixed("not enough RAM"), lambda n, s, r, up, g: s.free_ram_mb >= r.memory_mb),
    Check(_fixed("not enough disk"), lambda n, s, r, up, g: s.free_disk_gb >= r.disk_gb),
    Check(_group_reason, lambda n, s, r, up, g: group_allows(n["host"], g)),
)


def filter_host(
    node: dict, state: HostState, req: Request, up: bool, group: GroupState | None = None
) -> bool:
    """Apply every filter; the reasons a host failed are kept in `state.reasons`."""
    state.reasons = [f.reason(group) for f in FILTERS if not f.passes(node, state, req, up, group)]
    return not state.reasons


def soft_group_rank(host: str, group: GroupState | None) -> int:
    """Lower ranks first: soft-affinity prefers many members, soft-anti-affinity few."""
    if group is None:
        return 0
    count = group.members.get(host, 0)
    if group.policy == "soft-affinity":
        return -count
    if group.policy == "soft-anti-affinity":
        return count
    return 0


def weigh(states: list[HostState], group: GroupState | None = None) -> list[HostState]:
    """Spread: the host with the most free RAM first, host name as the tie-breaker; a soft
    group policy comes first (most members for soft-affinity, fewest for soft-anti)."""
    return sorted(states, key=lambda s: (soft_group_rank(s.host, group), -s.free_ram_mb, s.host))
