"""nova-scheduler: filter hosts, weigh them, and claim resources atomically.

The filters and the weigher are in `filters.py`; the hosts and their claims are kept in memory
(`state.py`), so a decision reads nothing from the store. The claim is then written in one
transaction that locks the chosen host and checks, from the `allocations` table itself, that the
host still has room (another controller sharing a PostgreSQL database might have claimed it);
if not, the scheduler reloads and decides again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mininova import timeutil
from mininova.config import ServeConfig
from mininova.errors import NoValidHost
from mininova.scheduler.filters import (
    GroupState,
    HostState,
    Request,
    filter_host,
    host_state,
    weigh,
)
from mininova.scheduler.state import CLAIM_RELOAD_S, NODE_RELOAD_S, HostStates
from mininova.store import Store, allocations, hosts, server_groups

__all__ = [
    "GroupState",
    "HostState",
    "Request",
    "Scheduler",
    "filter_host",
    "host_state",
    "weigh",
]

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 3


class _HostFull(Exception):
    """The chosen host had no room left in the database (claimed elsewhere)."""


async def load_group(
    store: Any, group_id: str | None, instance_uuid: str, states: HostStates
) -> GroupState | None:
    """The group's policy and where its other members hold claims (None: no group).

    Member hosts come from the claims in memory, which include claims whose transaction has
    not committed yet (parallel builds of one group must see each other)."""
    if not group_id:
        return None
    group = await server_groups.get(store, group_id)
    if group is None:
        return None
    members: dict[str, int] = {}
    for uuid in await server_groups.members(store, group_id):
        claim = states.claims.get(uuid)
        if uuid != instance_uuid and claim is not None:
            members[claim[0]] = members.get(claim[0], 0) + 1
    return GroupState(
        policy=group["policy"],
        max_per_host=int(group["rules"].get("max_server_per_host") or 1),
        members=members,
    )


class Scheduler:
    def __init__(self, store: Store, config: ServeConfig) -> None:
        self.store = store
        self.config = config
        self.states = HostStates(config.heartbeat_interval * config.missed_heartbeats_down)
        self._nodes_generation = -1
        self._nodes_at = float("-inf")
        self._claims_generation = -1
        self._claims_at = float("-inf")
        self._claiming = 0
        self._refresh_lock = asyncio.Lock()

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "select_and_claim":
            return await self.select_and_claim(Request(**params))
        if method == "release":
            return await self.release(params["instance_uuid"])
        raise LookupError(f"scheduler has no method {method!r}")

    async def refresh(self, *, force: bool = False) -> None:
        """Reload what changed behind the scheduler's back (see state.py).

        One reload at a time: a decision that arrives while another one's reload is awaiting
        the database waits for it instead of deciding on the old view. With nothing to reload
        and no reload under way, the lock is not taken (its waiters are not walked)."""
        if not force and not self._refresh_lock.locked() and not self._stale():
            return
        async with self._refresh_lock:
            await self._refresh(force)

    def _claims_stale(self, now: float) -> bool:
        return self._claiming == 0 and (
            self.store.generation("allocations") != self._claims_generation
            or now - self._claims_at > CLAIM_RELOAD_S
        )

    def _nodes_stale(self, now: float) -> bool:
        return (
            self.store.generation("compute_nodes") != self._nodes_generation
            or now - self._nodes_at > NODE_RELOAD_S
        )

    def _stale(self) -> bool:
        now = timeutil.monotonic()
        return self._claims_stale(now) or self._nodes_stale(now)

    async def _refresh(self, force: bool) -> None:
        store = self.store
        now = timeutil.monotonic()
        if (force and self._claiming == 0) or self._claims_stale(now):
            self._claims_generation = store.generation("allocations")
            self._claims_at = now
            rows = await allocations.all_claims(store)
            self.states.load_claims(rows)
        if force or self._nodes_stale(now):
            self._nodes_generation = store.generation("compute_nodes")
            self._nodes_at = now
            self.states.load_nodes(await hosts.all_nodes(store))

    async def select_and_claim(self, req: Request) -> str:
        for _attempt in range(CLAIM_ATTEMPTS):
            await self.refresh(force=_attempt > 0)
            group = await load_group(self.store, req.group, req.instance_uuid, self.states)
            chosen = self.states.choose(req, group)  # no await from here to the claim
            if chosen is None:
                raise NoValidHost(self._no_valid_host(req, group))
            try:
                await self._claim(req, chosen)
            except _HostFull:
                log.info("host %s filled up meanwhile; deciding again", chosen)
                continue
            log.info("scheduled %s on %s", req.instance_uuid, chosen)
            return chosen
        raise NoValidHost("No valid host was found. Every chosen host filled up meanwhile.")

    async def _claim(self, req: Request, chosen: str) -> None:
        states = self.states
        previous = states.claims.get(req.instance_uuid)
        states.add_claim(req.instance_uuid, chosen, req.vcpus, req.memory_mb, req.disk_gb)
        host = states.hosts[chosen]
        self._claiming += 1
        try:
            async with self.store.transaction() as tx:
                await tx.lock(f"host:{chosen}")
                await allocations.claim(
                    tx, req.instance_uuid, chosen, req.vcpus, req.memory_mb, req.disk_gb
                )
                used = await allocations.host_usage(tx, chosen)
                if (
                    used["vcpus"] > host.cap_vcpus
                    or used["memory_mb"] > host.cap_ram_mb
                    or used["disk_gb"] > host.cap_disk_gb
                ):
                    raise _HostFull(chosen)
        except BaseException:
            states.drop_claim(req.instance_uuid)
            if previous is not None:
                states.add_claim(req.instance_uuid, *previous)
            raise
        finally:
            self._claiming -= 1
        # Our own write: no reason to reload the claims for it.
        self._claims_generation = self.store.generation("allocations")

    def _no_valid_host(self, req: Request, group: GroupState | None) -> str:
        rejected = self.states.explain(req, group)
        detail = "; ".join(f"{s.host}: {', '.join(s.reasons)}" for s in rejected if s.reasons)
        return "No valid host was found. " + (
            f"Hosts rejected: {detail}" if detail else "There are no compute hosts."
        )

    async def release(self, instance_uuid: str) -> None:
        await allocations.release(self.store, instance_uuid)
        self.states.drop_claim(instance_uuid)
        self._claims_generation = self.store.generation("allocations")
