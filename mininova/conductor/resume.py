"""Work cut short by a controller restart: resumed, or settled from what the hosts report.

`ResumeWork` is mixed into `Conductor`; `Conductor.recover` calls `resume_interrupted` at start,
then `await_resumed_work` until everything it took over is settled. What the database tells:

* a build in `scheduling` never reached a host (the conductor sets `spawning` and the host
  before it orders the spawn): its claim, if any, is released and it is built again — once the
  hosts that were up when the controller stopped have reconnected (at most the liveness window,
  `heartbeat_interval × missed_heartbeats_down`), so the builds spread as they would have.
* a build in `spawning` on host H may have been ordered: it waits for H's report (the guests of
  its `hello`). Guest there and running → ACTIVE with what H reports (claim kept or re-made on
  H); absent or not running → the leftover is destroyed on H, the claim released and the build
  rescheduled with the attempts `build_retries` still allows, else ERROR with the cause. H not
  back within `spawn_timeout` → rescheduled elsewhere, or ERROR naming H.
* a power action or reboot (task `powering-off`, `rebooting`, …) on H: H's report settles it —
  a guest already in the power state the action lands in lands it; otherwise the order is sent
  again (reboot always: one cannot tell a rebooted guest from another). H not back within
  `action_timeout`, or the guest gone → the task is cleared with the action event failed (the
  power-state sync takes it from there), as when the order fails.

Deletes, soft deletes and restores are cast again by `recover` (they are idempotent); resizes
and migrations are `ResizeOps.recover_moves`'s.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova import timeutil
from mininova.protocol import ProtocolError
from mininova.store import allocations, hosts, migrations
from mininova.store import instances as db
from mininova.timeutil import now_iso, parse_iso

if TYPE_CHECKING:
    from mininova.agenthub import AgentHub
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.config import ServeConfig
    from mininova.scheduler.client import SchedulerClient
    from mininova.store import Store

log = logging.getLogger(__name__)

BUILD_EVENT = "conductor_schedule_and_build"
# task_state → the action whose order a restart may have cut (soft delete and restore are
# cast again by recover; they have task states of their own)
RESUMABLE_ACTIONS = {
    st.ACTIONS[name].task_state: name
    for name in ("stop", "start", "reboot", "reboot_hard", "pause", "unpause", "suspend", "resume")
}


@dataclass
class Interrupted:
    """Work that was on a host when the controller stopped: what the host must settle."""

    host: str
    task: str
    deadline: float  # timeutil.monotonic() after which the host counts as not coming back


class ResumeWork:
    """Conductor mixin: resume or settle the work a controller restart interrupted."""

    if TYPE_CHECKING:
        config: ServeConfig
        store: Store
        hub: AgentHub
        scheduler: SchedulerClient
        conductor: ConductorAPI

        def _lock(self, uuid: str) -> asyncio.Lock: ...

        async def _build(
            self,
            uuid: str,
            *,
            attempts: int | None = None,
            exclude: tuple[str, ...] = (),
            cause: str | None = None,
        ) -> None: ...

        async def _run_action(self, uuid: str, action: str) -> None: ...

        def _network_changed(self, project_id: str, host: str | None) -> None: ...

    def _resume_state(self) -> None:
        self._interrupted: dict[str, Interrupted] = {}
        self._unsent: list[str] = []  # builds to start again once the hosts are back
        self._unsent_hosts: set[str] = set()  # the hosts that were up when we stopped
        self._unsent_deadline = 0.0
        self._wake = asyncio.Event()
        self.taken_over = asyncio.Event()  # set once resume_interrupted has run

    # ---- at start ------------------------------------------------------------------------

    async def resume_interrupted(self, rows: list[dict[str, Any]]) -> None:
        """Take over the builds and actions among `rows` (in-flight instances: uuid,
        vm_state, task_state, host); the rest is the caller's."""
        now = timeutil.monotonic()
        for row in rows:
            uuid, task, host = row["uuid"], row["task_state"], row["host"]
            if row["vm_state"] == st.BUILDING and (task == st.SCHEDULING or not host):
                await self.scheduler.release(uuid)  # a claim made before the spawn was set
                self._unsent.append(uuid)
            elif row["vm_state"] == st.BUILDING and task == st.SPAWNING:
                bound = self.config.spawn_timeout
                self._interrupted[uuid] = Interrupted(host, task, now + bound)
            elif task in RESUMABLE_ACTIONS and host:
                bound = self.config.action_timeout
                self._interrupted[uuid] = Interrupted(host, task, now + bound)
        if self._unsent:
            window = self.config.heartbeat_interval * self.config.missed_heartbeats_down
            self._unsent_hosts = await self._hosts_up_when_stopped(window)
            self._unsent_deadline = now + window
            log.info(
                "restart: %d build(s) that reached no host wait for %s (at most %.0fs)",
                len(self._unsent),
                ", ".join(sorted(self._unsent_hosts)) or "no host",
                window,
            )
        if self._interrupted:
            log.info(
                "restart: %d build(s)/action(s) wait for their hosts' reports",
                len(self._interrupted),
            )
        self.taken_over.set()
        # A host that said hello before we got here: ask it for its guests.
        connected = await self._connected_hosts()
        for host in sorted({i.host for i in self._interrupted.values()} & connected):
            await self._settle_from_listing(host)

    async def _hosts_up_when_stopped(self, window: float) -> set[str]:
        """The enabled hosts whose last heartbeat is within the liveness window of the newest
        one: the hosts that were up when the controller stopped (however long ago). A host
        already back is one of them (its hello moved its heartbeat to now)."""
        beats: dict[str, float] = {}
        back: set[str] = set()
        for node in await hosts.all_nodes(self.store):
            if node["disabled"] or node["forced_down"] or not node["last_heartbeat"]:
                continue
            if node["connected"]:
                back.add(node["host"])
            else:
                beats[node["host"]] = parse_iso(node["last_heartbeat"]).timestamp()
        newest = max(beats.values(), default=0.0)
        return back | {host for host, beat in beats.items() if beat >= newest - window}

    async def _connected_hosts(self) -> set[str]:
        return {n["host"] for n in await hosts.all_nodes(self.store) if n["connected"]}

    async def await_resumed_work(self) -> None:
        """Until every build and action taken over is settled: start the unsent builds when
        their hosts are back, settle what is overdue. Returns at once when there is none."""
        while self._unsent or self._interrupted:
            self._wake.clear()
            await self.settle_overdue()
            if not (self._unsent or self._interrupted):
                return
            deadlines = [i.deadline for i in self._interrupted.values()]
            if self._unsent:
                deadlines.append(self._unsent_deadline)
            delay = max(0.05, min(deadlines) - timeutil.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def settle_overdue(self) -> None:
        """Start the unsent builds if their hosts are back (or the wait is over); settle the
        interrupted work whose host did not report in time."""
        now = timeutil.monotonic()
        if self._unsent:
            back = self._unsent_hosts <= await self._connected_hosts()
            if back or now >= self._unsent_deadline:
                uuids, self._unsent = self._unsent, []
                log.info("restart: building %d server(s) again", len(uuids))
                self.conductor.build_instances(uuids)
        overdue = [u for u, i in self._interrupted.items() if now >= i.deadline]
        if not overdue:
            return
        connected = await self._connected_hosts()
        listed: dict[str, dict[str, dict[str, Any]] | None] = {}
        for uuid in overdue:
            entry = self._interrupted.get(uuid)
            if entry is None:
                continue  # settled meanwhile (its host reported)
            host = entry.host
            if host not in listed:
                listed[host] = await self._guests_of(host) if host in connected else None
            await self.settle_interrupted(uuid, listed[host])

    async def _guests_of(self, host: str) -> dict[str, dict[str, Any]] | None:
        try:
            guests = await self.hub.call(host, "list_guests", {}, timeout=60)
        except ProtocolError as exc:
            log.warning("cannot list the guests of %s: %s", host, exc.message)
            return None
        return _by_uuid(guests)

    async def _settle_from_listing(self, host: str) -> None:
        guests = await self._guests_of(host)
        if guests is not None:
            await self._settle_host(host, guests)

    # ---- a host (re)connected --------------------------------------------------------------

    async def settle_reported(self, host: str, guests: list[Any]) -> None:
        """`host` said hello with `guests`: settle what waited for it."""
        self._wake.set()
        await self._settle_host(host, _by_uuid(guests))

    async def _settle_host(self, host: str, guests: dict[str, dict[str, Any]]) -> None:
        waiting = [u for u, i in self._interrupted.items() if i.host == host]
        await asyncio.gather(*(self.settle_interrupted(u, guests) for u in waiting))

    async def reap_misplaced(self, host: str, guests: set[str]) -> None:
        """Destroy the guests `host` reports (not placed on it) whose instance lives on another
        host or none and is not moving: left by a build that failed over or was rescheduled
        while the spawn went on there. Unknown and deleted ones are do_host_connected's."""
        for uuid in sorted(guests):
            if uuid in self._interrupted or self._lock(uuid).locked():
                continue
            row = await db.get(self.store, uuid)
            if row is None or row["host"] == host or row["task_state"] is not None:
                continue
            if await migrations.latest_of_instance(self.store, uuid) is not None:
                continue  # a move's copies: ResizeOps.reconcile_moves decides
            log.warning(
                "reaping guest %s on %s: its instance is on %s", uuid, host, row["host"] or "none"
            )
            try:
                await self.hub.call(host, "destroy", {"uuid": uuid}, timeout=60)
            except ProtocolError as exc:
                log.warning("reap of %s on %s failed: %s", uuid, host, exc.message)

    # ---- settling one -----------------------------------------------------------------------

    async def settle_interrupted(self, uuid: str, guests: dict[str, dict[str, Any]] | None) -> None:
        """Settle `uuid` from its host's guests (None: the host did not come back in time)."""
        entry = self._interrupted.get(uuid)
        if entry is None:
            return
        reschedule: dict[str, Any] | None = None
        async with self._lock(uuid):
            if self._interrupted.get(uuid) is not entry:
                return  # settled meanwhile
            del self._interrupted[uuid]
            self._wake.set()
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != entry.task or inst["host"] != entry.host:
                return  # deleted, or moved on
            guest = None if guests is None else guests.get(uuid)
            if entry.task == st.SPAWNING:
                reschedule = await self._settle_build(inst, guests is not None, guest)
            else:
                await self._settle_action(inst, guests is not None, guest)
        if reschedule is not None:
            await self._build(uuid, **reschedule)

    async def _settle_build(
        self, inst: dict[str, Any], host_back: bool, guest: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Land a build its host finished; else how to build it again (under the lock)."""
        uuid, host = inst["uuid"], inst["host"]
        attempts = await db.events_named(self.store, uuid, BUILD_EVENT)
        open_events = [e["id"] for e in attempts if e["finish_time"] is None]
        if guest is not None and guest.get("power_state") == st.RUNNING:
            flavor = inst["flavor"]
            async with self.store.transaction() as tx:
                await allocations.claim(
                    tx,
                    uuid,
                    host,
                    int(flavor["vcpus"]),
                    int(flavor["ram"]),
                    int(flavor["disk"]) + int(flavor.get("ephemeral") or 0),
                )
                await db.update(
                    tx,
                    uuid,
                    expect_task_state=st.SPAWNING,
                    vm_state=st.ACTIVE,
                    task_state=None,
                    power_state=st.RUNNING,
                    addresses=guest.get("addresses") or [],
                    launched_at=now_iso(),
                )
            for event in open_events:
                await db.finish_event(self.store, event, True)
            log.info("restart: %s was running on %s: ACTIVE", uuid, host)
            self._network_changed(inst["project_id"], host)
            return None
        if host_back:
            why = "absent" if guest is None else f"in power state {guest.get('power_state')}"
            cause = (
                f"Build of instance {uuid} on {host} was cut short by a controller restart"
                f" (the guest was {why} when the host reported)."
            )
            await self._destroy_leftover(host, uuid)
            exclude: tuple[str, ...] = ()
        else:
            cause = (
                f"Build of instance {uuid} failed on {host}: the host did not reconnect"
                f" within {self.config.spawn_timeout:g}s of the controller restart."
            )
            exclude = (host,)
        for event in open_events:
            await db.finish_event(self.store, event, False, cause)
        await self.scheduler.release(uuid)
        left = max(1, self.config.build_retries) - len(attempts)
        log.warning("%s %d attempt(s) left", cause, max(left, 0))
        if left <= 0:
            await db.update(
                self.store,
                uuid,
                expect_task_state=st.SPAWNING,
                vm_state=st.ERROR,
                task_state=None,
                fault=db.fault(cause),
            )
            return None
        return {"attempts": left, "exclude": exclude, "cause": cause}

    async def _destroy_leftover(self, host: str, uuid: str) -> None:
        """Destroy what a cut spawn left on `host`; an order still running there finishes
        first (the agent runs one order per guest at a time)."""
        try:
            await self.hub.call(host, "destroy", {"uuid": uuid}, timeout=self.config.spawn_timeout)
        except ProtocolError as exc:
            log.info("cleanup of cut spawn %s on %s: %s", uuid, host, exc.message)

    async def _settle_action(
        self, inst: dict[str, Any], host_back: bool, guest: dict[str, Any] | None
    ) -> None:
        uuid, task, host = inst["uuid"], inst["task_state"], inst["host"]
        action = RESUMABLE_ACTIONS[task]
        spec = st.ACTIONS[action]
        if not host_back or guest is None:
            why = (
                f"the host {host} did not reconnect within {self.config.action_timeout:g}s"
                if not host_back
                else f"the guest is not on {host}"
            )
            log.warning("restart: %s of %s not resumed: %s", action, uuid, why)
            event = await db.start_event(self.store, uuid, f"compute_{spec.agent_method}", host)
            await db.finish_event(self.store, event, False, f"Interrupted by a restart: {why}.")
            await db.update(self.store, uuid, expect_task_state=task, task_state=None)
            return
        if spec.agent_method != "reboot" and guest.get("power_state") == spec.lands_power_state:
            event = await db.start_event(self.store, uuid, f"compute_{spec.agent_method}", host)
            await db.finish_event(self.store, event, True)
            await db.update(
                self.store,
                uuid,
                expect_task_state=task,
                vm_state=spec.lands_vm_state,
                power_state=spec.lands_power_state,
                task_state=None,
            )
            log.info("restart: %s of %s had been done on %s", action, uuid, host)
            return
        log.info("restart: ordering %s of %s on %s again", action, uuid, host)
        await self._run_action(uuid, action)


def _by_uuid(guests: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(guests, list):
        return {}
    return {g["uuid"]: g for g in guests if isinstance(g, dict) and isinstance(g.get("uuid"), str)}
