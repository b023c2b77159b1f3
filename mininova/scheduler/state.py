"""The scheduler's in-memory view of every host: capacity, liveness and what is claimed.

Nodes are reloaded (one query) when the `compute_nodes` table changed in this process (a hello,
a disconnect, a heartbeat flush, an os-services change) or every `NODE_RELOAD_S` anyway; claims
are kept up to date by the scheduler's own claims and releases and reloaded (one query) when
another writer touched `allocations` or every `CLAIM_RELOAD_S`. A decision is then one pass
over the hosts in memory, with no query.

A plain request (no group, zone, forced or excluded host, no earlier claim of its own) takes
the most free RAM first from a heap of (-free RAM, host name), so at 1,000 hosts a decision
looks at a few entries instead of every host. Entries go stale when a host's usage changes (a
new one is pushed then) and are dropped when they reach the top.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from mininova import timeutil
from mininova.scheduler.filters import (
    GroupState,
    HostState,
    Request,
    filter_host,
    group_allows,
    host_state,
    soft_group_rank,
    weigh,
)

NODE_RELOAD_S = 5.0
CLAIM_RELOAD_S = 30.0


@dataclass(slots=True)
class Host:
    """One compute node as the scheduler needs it."""

    row: dict
    host: str
    zone: str
    enabled: bool
    cap_vcpus: float
    cap_ram_mb: float
    cap_disk_gb: float
    heartbeat: float | None  # epoch seconds of the last heartbeat; None: never / not connected
    used_vcpus: int = 0
    used_ram_mb: int = 0
    used_disk_gb: int = 0

    @classmethod
    def from_row(cls, row: dict) -> Host:
        connected = bool(row.get("connected")) and bool(row.get("last_heartbeat"))
        return cls(
            row=row,
            host=row["host"],
            zone=row["zone"],
            enabled=not row["disabled"] and not row.get("forced_down"),
            cap_vcpus=row["vcpus"] * row["cpu_allocation_ratio"],
            cap_ram_mb=row["memory_mb"] * row["ram_allocation_ratio"],
            cap_disk_gb=row["local_gb"] * row["disk_allocation_ratio"],
            heartbeat=timeutil.parse_iso(row["last_heartbeat"]).timestamp() if connected else None,
        )

    def used(self) -> dict[str, int]:
        return {
            "vcpus": self.used_vcpus,
            "memory_mb": self.used_ram_mb,
            "disk_gb": self.used_disk_gb,
        }


Claim = tuple[str, int, int, int]  # host, vcpus, memory_mb, disk_gb


class HostStates:
    """Hosts and claims in memory; `choose` filters and weighs without touching the store."""

    def __init__(self, down_after_s: float) -> None:
        self.down_after_s = down_after_s
        self.hosts: dict[str, Host] = {}
        self.claims: dict[str, Claim] = {}
        self._by_free_ram: list[tuple[float, str]] = []  # heap of (-free RAM, host name)

    # ---- loading ------------------------------------------------------------------------

    def load_nodes(self, rows: list[dict]) -> None:
        self.hosts = {
            row["host"]: Host.from_row(row) for row in sorted(rows, key=lambda r: r["host"])
        }
        self._count_claims()

    def load_claims(self, rows: list[dict]) -> None:
        for host in self.hosts.values():
            host.used_vcpus = host.used_ram_mb = host.used_disk_gb = 0
        self.claims = {
            row["instance_uuid"]: (
                row["host"],
                int(row["vcpus"]),
                int(row["memory_mb"]),
                int(row["disk_gb"]),
            )
            for row in rows
        }
        self._count_claims()

    def _count_claims(self) -> None:
        """Add every claim to its host's usage (hosts start from none), then rank the hosts."""
        for claim in self.claims.values():
            host = self.hosts.get(claim[0])
            if host is not None:
                self._add(host, claim, 1)
        self._rank_all()

    # ---- claims -------------------------------------------------------------------------

    @staticmethod
    def _add(host: Host, claim: Claim, sign: int) -> None:
        host.used_vcpus += sign * claim[1]
        host.used_ram_mb += sign * claim[2]
        host.used_disk_gb += sign * claim[3]

    def add_claim(self, uuid: str, host: str, vcpus: int, memory_mb: int, disk_gb: int) -> None:
        self.drop_claim(uuid)
        claim = (host, int(vcpus), int(memory_mb), int(disk_gb))
        self.claims[uuid] = claim
        if host in self.hosts:
            self._add(self.hosts[host], claim, 1)
            self._rank(self.hosts[host])

    def drop_claim(self, uuid: str) -> None:
        claim = self.claims.pop(uuid, None)
        if claim is not None and claim[0] in self.hosts:
            self._add(self.hosts[claim[0]], claim, -1)
            self._rank(self.hosts[claim[0]])

    # ---- the free RAM heap --------------------------------------------------------------

    def _rank_all(self) -> None:
        self._by_free_ram = [(h.used_ram_mb - h.cap_ram_mb, h.host) for h in self.hosts.values()]
        heapq.heapify(self._by_free_ram)

    def _rank(self, host: Host) -> None:
        if len(self._by_free_ram) > 2 * len(self.hosts) + 64:  # mostly stale entries
            self._rank_all()
        else:
            heapq.heappush(self._by_free_ram, (host.used_ram_mb - host.cap_ram_mb, host.host))

    def _choose_by_free_ram(self, req: Request, now: float) -> str | None:
        """`choose` for a plain request: the first host of the heap that passes the filters."""
        heap = self._by_free_ram
        limit = self.down_after_s
        passed_over: list[tuple[float, str]] = []
        try:
            while heap:
                neg_free_ram, name = heap[0]
                host = self.hosts.get(name)
                if host is None or host.used_ram_mb - host.cap_ram_mb != neg_free_ram:
                    heapq.heappop(heap)  # stale: the host changed or went away
                    continue
                if -neg_free_ram < req.memory_mb:
                    return None  # no host has more free RAM than this one
                if (
                    host.cap_vcpus - host.used_vcpus < req.vcpus
                    or host.cap_disk_gb - host.used_disk_gb < req.disk_gb
                    or not host.enabled
                    or host.heartbeat is None
                    or now - host.heartbeat > limit
                ):
                    passed_over.append(heapq.heappop(heap))
                    continue
                return name
            return None
        finally:
            for entry in passed_over:
                heapq.heappush(heap, entry)

    # ---- deciding -----------------------------------------------------------------------

    def is_up(self, host: Host, now: float) -> bool:
        return host.heartbeat is not None and now - host.heartbeat <= self.down_after_s

    def choose(self, req: Request, group: GroupState | None) -> str | None:
        """The best host for `req` (its own earlier claim not counted), or None."""
        now = timeutil.now_utc().timestamp()
        limit = self.down_after_s
        zone = req.availability_zone or None
        exclude = req.exclude
        force = req.force_host
        own = self.claims.get(req.instance_uuid)
        if group is None and own is None and zone is None and force is None and not exclude:
            return self._choose_by_free_ram(req, now)
        best: Host | None = None
        best_key: tuple = ()
        for host in self.hosts.values():
            vcpus, ram, disk = host.used_vcpus, host.used_ram_mb, host.used_disk_gb
            if own is not None and own[0] == host.host:
                vcpus, ram, disk = vcpus - own[1], ram - own[2], disk - own[3]
            free_ram = host.cap_ram_mb - ram
            if (
                free_ram < req.memory_mb
                or host.cap_vcpus - vcpus < req.vcpus
                or host.cap_disk_gb - disk < req.disk_gb
                or not host.enabled
                or host.heartbeat is None
                or now - host.heartbeat > limit
                or (zone is not None and host.zone != zone)
                or (force is not None and host.host != force)
                or host.host in exclude
            ):
                continue
            if group is not None and not group_allows(host.host, group):
                continue
            key = (soft_group_rank(host.host, group), -free_ram)
            if best is None or key < best_key:  # hosts iterate in name order: ties keep first
                best, best_key = host, key
        return best.host if best is not None else None

    def explain(self, req: Request, group: GroupState | None) -> list[HostState]:
        """Every host with the reasons it failed (the slow reference path, for faults)."""
        now = timeutil.now_utc().timestamp()
        states = []
        for host in self.hosts.values():
            used = host.used()
            own = self.claims.get(req.instance_uuid)
            if own is not None and own[0] == host.host:
                used = {
                    "vcpus": used["vcpus"] - own[1],
                    "memory_mb": used["memory_mb"] - own[2],
                    "disk_gb": used["disk_gb"] - own[3],
                }
            state = host_state(host.row, used)
            up = self.is_up(host, now) and not host.row.get("forced_down")
            filter_host(host.row, state, req, up, group)
            states.append(state)
        return states

    def reference_choice(self, req: Request, group: GroupState | None) -> str | None:
        """What filter_host + weigh decide (tests compare it with `choose`)."""
        passed = [s for s in self.explain(req, group) if not s.reasons]
        return weigh(passed, group)[0].host if passed else None
