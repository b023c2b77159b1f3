"""nova-scheduler: filter hosts, weigh them, and claim resources atomically.

Filters: enabled, up, availability zone, free vCPU/RAM/disk under the allocation ratios.
Weigher: spread by free RAM (most free first). `select_and_claim` runs inside one store
transaction, so two concurrent builds can never both take the last slot of a host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mininova.api.services import Services
from mininova.hosts import is_up

log = logging.getLogger(__name__)


class NoValidHost(Exception):
    """No host passed the filters."""


@dataclass(frozen=True)
class Request:
    instance_uuid: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    exclude: tuple[str, ...] = ()
    force_host: str | None = None


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


def filter_host(node: dict, state: HostState, req: Request, up: bool) -> bool:
    """Apply every filter; the reasons a host failed are kept for the fault message."""
    checks = (
        (not node["disabled"], "disabled"),
        (up, "down"),
        (node["host"] not in req.exclude, "already tried"),
        (req.force_host in (None, node["host"]), "not the requested host"),
        (req.availability_zone in (None, "", node["zone"]), "other availability zone"),
        (state.free_vcpus >= req.vcpus, "not enough vCPUs"),
        (state.free_ram_mb >= req.memory_mb, "not enough RAM"),
        (state.free_disk_gb >= req.disk_gb, "not enough disk"),
    )
    state.reasons = [reason for ok, reason in checks if not ok]
    return not state.reasons


def weigh(states: list[HostState]) -> list[HostState]:
    """Spread: the host with the most free RAM first, host name as the tie-breaker."""
    return sorted(states, key=lambda s: (-s.free_ram_mb, s.host))


class Scheduler:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "select_and_claim":
            return await self.select_and_claim(Request(**params))
        if method == "release":
            return await self.release(params["instance_uuid"])
        raise LookupError(f"scheduler has no method {method!r}")

    async def select_and_claim(self, req: Request) -> str:
        store = self.services.store
        async with store.transaction():
            nodes = await store.fetchall("SELECT * FROM compute_nodes ORDER BY host")
            usage = await store.fetchall(
                "SELECT host, SUM(vcpus) AS vcpus, SUM(memory_mb) AS memory_mb,"
                " SUM(disk_gb) AS disk_gb FROM allocations WHERE instance_uuid != ?"
                " GROUP BY host", (req.instance_uuid,))
            used = {u["host"]: u for u in usage}
            passed: list[HostState] = []
            rejected: list[HostState] = []
            for node in nodes:
                state = host_state(node, used.get(node["host"], {}))
                if filter_host(node, state, req, is_up(node, self.services.config)):
                    passed.append(state)
                else:
                    rejected.append(state)
            if not passed:
                detail = "; ".join(f"{s.host}: {', '.join(s.reasons)}" for s in rejected)
                raise NoValidHost(
                    "No valid host was found. "
                    + (f"Hosts rejected: {detail}" if detail else "There are no compute hosts.")
                )
            chosen = weigh(passed)[0].host
            await store.execute(
                "INSERT INTO allocations (instance_uuid, host, vcpus, memory_mb, disk_gb)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(instance_uuid) DO UPDATE SET"
                " host=excluded.host, vcpus=excluded.vcpus, memory_mb=excluded.memory_mb,"
                " disk_gb=excluded.disk_gb",
                (req.instance_uuid, chosen, req.vcpus, req.memory_mb, req.disk_gb))
        log.info("scheduled %s on %s", req.instance_uuid, chosen)
        return chosen

    async def release(self, instance_uuid: str) -> None:
        await self.services.store.execute(
            "DELETE FROM allocations WHERE instance_uuid = ?", (instance_uuid,))
