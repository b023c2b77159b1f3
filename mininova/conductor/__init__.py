"""nova-conductor: builds, actions and deletes between the API, the scheduler and the hosts.

The API records the request and sets the task_state, then casts here. The conductor asks the
scheduler for a host (with an atomic claim), orders the host's agent over the hub, and lands
the instance in the state the state machine names — or in ERROR with a fault. It also
reconciles what agents report (power-state sync, reconnects) with what the database says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mininova import instance_states as st
from mininova.agenthub import AgentHub
from mininova.conductor.network_push import NetworkPusher
from mininova.conductor.rebuild import rebuild_instance
from mininova.conductor.resize import ResizeOps
from mininova.conductor.resume import RESUMABLE_ACTIONS, ResumeWork
from mininova.conductor.rpcapi import ConductorAPI
from mininova.conductor.shelve import ShelveMixin
from mininova.conductor.soft_delete import SoftDeletes
from mininova.conductor.specs import (
    CurrentServer,
    Placement,
    Spawned,
    image_file_path,
    instance_spec,
)
from mininova.config import ServeConfig
from mininova.consoleauth.client import ConsoleAuthClient
from mininova.errors import NoValidHost
from mininova.image.client import ImageClient
from mininova.protocol import ProtocolError
from mininova.scheduler import Request
from mininova.scheduler.client import SchedulerClient
from mininova.store import Store, allocations, guest_reports, host_network, server_groups
from mininova.store import instances as db
from mininova.timeutil import monotonic, now_iso
from mininova.trust.capabilities import Capabilities

log = logging.getLogger(__name__)

# A guest missing from this many consecutive sweeps of its host is declared lost.
MISSING_SWEEPS = 2
# A host whose reports keep matching its instances is compared in full at least this often.
SETTLED_RESYNC_SECONDS = 60.0


class Conductor(SoftDeletes, ShelveMixin, ResizeOps, ResumeWork):
    def __init__(
        self,
        *,
        config: ServeConfig,
        store: Store,
        hub: AgentHub,
        capabilities: Capabilities,
        scheduler: SchedulerClient,
        images: ImageClient,
        consoleauth: ConsoleAuthClient,
        conductor: ConductorAPI,
    ) -> None:
        self.config = config
        self.store = store
        self.hub = hub
        self.capabilities = capabilities
        self.scheduler = scheduler
        self.images = images
        self.consoleauth = consoleauth
        self.conductor = conductor  # casts to ourselves (queued deletes)
        # scale-out seam: per-controller sweep counts; reset when a host moves
        self._missing: dict[str, int] = {}
        # power sync: per host, (generations, report, deadline) of its last quiet sync, and
        # the report last written to host_guests
        self._settled: dict[str, tuple[tuple[int, int], list[Any], float]] = {}
        self._recorded: dict[str, list[Any]] = {}
        # scale-out seam: per-instance locks are in-process; need an advisory lock
        self._locks: dict[str, asyncio.Lock] = {}
        self.network = NetworkPusher(store, hub)
        self._resume_state()  # work a restart interrupted (conductor/resume.py)

    def _lock(self, uuid: str) -> asyncio.Lock:
        return self._locks.setdefault(uuid, asyncio.Lock())

    async def close(self) -> None:
        """Stop the network pusher (a round in progress is cancelled)."""
        await self.network.close()

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"do_{method}", None)
        if handler is None:
            raise LookupError(f"conductor has no method {method!r}")
        return await handler(**params)

    # ---- builds ---------------------------------------------------------------------------

    async def do_build_instances(self, uuids: list[str]) -> None:
        await asyncio.gather(*(self._build(uuid) for uuid in uuids))

    async def _build(
        self,
        uuid: str,
        *,
        attempts: int | None = None,
        exclude: tuple[str, ...] = (),
        cause: str | None = None,
    ) -> None:
        """Build `uuid`; a resumed build passes the `attempts` left, the hosts to `exclude`
        and the `cause` its last try ended with (see _schedule_and_spawn)."""

        async def current() -> tuple[dict[str, Any], str | None] | None:
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] == st.DELETING:
                return None
            return inst, inst["scheduler_hints"].get("force_host")

        def failure(host: str, exc: Exception) -> str:
            return f"Build of instance {uuid} failed on {host}: " + (
                exc.message if isinstance(exc, ProtocolError) else str(exc)
            )

        placement = Placement(
            from_task=st.SCHEDULING,
            schedule_event="conductor_schedule_and_build",
            spawn_event=None,
            failure=failure,
        )
        async with self._lock(uuid):
            outcome = await self._schedule_and_spawn(
                uuid, current, placement, attempts=attempts, exclude=exclude, cause=cause
            )
            if outcome is None:
                return
            if isinstance(outcome, Spawned):
                inst, info = outcome.inst, outcome.info
                landed = await db.update(
                    self.store,
                    uuid,
                    expect_task_state=st.SPAWNING,
                    vm_state=st.ACTIVE,
                    task_state=None,
                    power_state=int(info.get("power_state", st.RUNNING)),
                    addresses=info.get("addresses") or [],
                    launched_at=now_iso(),
                )
                if not landed:  # deleted while spawning: the delete path cleans up
                    log.info("instance %s changed during spawn", uuid)
                else:
                    self._network_changed(inst["project_id"], outcome.host, uuid)
                return
            await db.update(
                self.store,
                uuid,
                vm_state=st.ERROR,
                task_state=None,
                fault=db.fault(outcome),
                expect_task_state=(st.SCHEDULING, st.SPAWNING),
            )
            log.warning("instance %s → ERROR: %s", uuid, outcome)

    async def _schedule_and_spawn(
        self,
        uuid: str,
        current: CurrentServer,
        placement: Placement,
        *,
        attempts: int | None = None,
        exclude: tuple[str, ...] = (),
        cause: str | None = None,
    ) -> Spawned | str | None:
        """Schedule (with a claim) and spawn `uuid`, trying up to `build_retries` hosts
        (`attempts`, when a resumed build has used some already).

        Each attempt reads the server from `current` and excludes the hosts tried before (and
        `exclude`); a failed spawn releases its claim and is destroyed on that host. Returns
        what spawned, the error to report when no host took it (`cause`: why an earlier try
        ended, if any), or None when the server went away (its claim released). The caller
        holds the instance lock and lands the server.
        """
        cfg = self.config
        tried: list[str] = list(exclude)
        last_error = cause or "No valid host was found."
        group = await server_groups.group_of(self.store, uuid)
        budget = max(1, cfg.build_retries) if attempts is None else attempts
        for _attempt in range(budget):
            candidate = await current()
            if candidate is None:
                return None
            inst, force_host = candidate
            flavor = inst["flavor"]
            request = Request(
                uuid,
                int(flavor["vcpus"]),
                int(flavor["ram"]),
                int(flavor["disk"]) + int(flavor.get("ephemeral") or 0),
                inst["availability_zone"] or None,
                tuple(tried),
                force_host,
                group,
            )
            event = await db.start_event(self.store, uuid, placement.schedule_event, None)
            try:
                host = await self.scheduler.select_and_claim(request)
            except NoValidHost as exc:
                # After a failed spawn, the spawn error is the cause worth reporting.
                last_error = f"{last_error} No other host could take it." if tried else str(exc)
                await db.finish_event(self.store, event, False, str(exc))
                return last_error
            if placement.spawn_event is not None:
                await db.finish_event(self.store, event, True)
            tried.append(host)
            if not await db.update(
                self.store,
                uuid,
                host=host,
                task_state=st.SPAWNING,
                expect_task_state=(placement.from_task, st.SPAWNING),
            ):
                if placement.spawn_event is None:
                    await db.finish_event(self.store, event, False, "deleted while scheduling")
                await self.scheduler.release(uuid)
                return None
            if placement.spawn_event is not None:
                event = await db.start_event(self.store, uuid, placement.spawn_event, host)
            # scale-out seam: grants must be readable by the controller the agent hits
            capability = self.capabilities.grant(
                host, "GET", image_file_path(inst["image_ref"]), cfg.spawn_timeout
            )
            try:
                spec = await instance_spec(self.store, self.config, inst, capability)
                info = await self.hub.call(
                    host, "spawn", {"instance": spec}, timeout=cfg.spawn_timeout
                )
            except (ProtocolError, OSError, ValueError) as exc:
                last_error = placement.failure(host, exc)
                log.warning("%s", last_error)
                await db.finish_event(self.store, event, False, last_error)
                await self.scheduler.release(uuid)
                await self._cleanup_failed_spawn(host, uuid)
                continue
            finally:
                self.capabilities.revoke(capability)
            await db.finish_event(self.store, event, True)
            return Spawned(inst, host, info)
        return last_error

    async def _recorded_call(
        self, uuid: str, event_name: str, host: str, method: str, failure_log: str
    ) -> bool:
        """Order `method` for `uuid` on `host` under the action event `event_name`; a failure
        is recorded on the event and logged with `failure_log` (uuid, host, error), not raised.
        Whether the host did it."""
        event = await db.start_event(self.store, uuid, event_name, host)
        try:
            await self.hub.call(host, method, {"uuid": uuid}, timeout=self.config.action_timeout)
        except ProtocolError as exc:
            log.warning(failure_log, uuid, host, exc.message)
            await db.finish_event(self.store, event, False, exc.message)
            return False
        await db.finish_event(self.store, event, True)
        return True

    async def _cleanup_failed_spawn(self, host: str, uuid: str) -> None:
        try:
            await self.hub.call(host, "destroy", {"uuid": uuid}, timeout=60)
        except ProtocolError as exc:
            log.info("cleanup of failed spawn %s on %s: %s", uuid, host, exc.message)

    # ---- actions ----------------------------------------------------------------------------

    async def do_run_action(self, uuid: str, action: str) -> None:
        async with self._lock(uuid):
            await self._run_action(uuid, action)

    async def _run_action(self, uuid: str, action: str) -> None:
        """Order `action` on the instance's host and land it (the caller holds the lock)."""
        spec = st.ACTIONS[action]
        inst = await db.get(self.store, uuid)
        if inst is None or inst["task_state"] != spec.task_state:
            return
        params: dict[str, Any] = {"uuid": uuid}
        if spec.agent_method == "reboot":
            params["hard"] = action == "reboot_hard"
        event = await db.start_event(self.store, uuid, f"compute_{spec.agent_method}", inst["host"])
        try:
            await self.hub.call(
                inst["host"] or "",
                spec.agent_method,
                params,
                timeout=self.config.action_timeout,
            )
        except ProtocolError as exc:
            log.warning("%s of %s failed: %s", action, uuid, exc.message)
            await db.finish_event(self.store, event, False, exc.message)
            await db.update(self.store, uuid, expect_task_state=spec.task_state, task_state=None)
            return
        await db.finish_event(self.store, event, True)
        await db.update(
            self.store,
            uuid,
            expect_task_state=spec.task_state,
            vm_state=spec.lands_vm_state,
            power_state=spec.lands_power_state,
            task_state=None,
        )

    # ---- rebuild ------------------------------------------------------------------------------

    async def do_rebuild_instance(self, uuid: str, preserve_ephemeral: bool = False) -> None:
        async with self._lock(uuid):
            await rebuild_instance(self, uuid, preserve_ephemeral)

    # ---- delete -------------------------------------------------------------------------------

    async def do_delete_instance(self, uuid: str) -> None:
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None:
                return
            host = inst["host"]
            if host:
                # Host down: delete locally; the guest is reaped when its agent returns.
                await self._recorded_call(
                    uuid,
                    "compute_terminate_instance",
                    host,
                    "destroy",
                    "delete of %s on %s deferred: %s",
                )
            await self._mark_deleted(uuid)
            await self.drop_shelved_image(inst)
            self._network_changed(inst["project_id"], host, uuid)

    async def _mark_deleted(self, uuid: str) -> None:
        async with self.store.transaction() as tx:
            await allocations.release(tx, uuid)
            await server_groups.remove_member(tx, uuid)
            # its floating IPs are disassociated, its security group memberships forgotten
            await host_network.release_instance(tx, uuid)
            await db.mark_deleted(tx, uuid, st.DELETED)
        await self.scheduler.release(uuid)  # its in-memory claim
        self.consoleauth.revoke_instance(uuid)
        self._locks.pop(uuid, None)
        log.info("instance %s deleted", uuid)

    # ---- snapshots ------------------------------------------------------------------------

    async def do_snapshot_instance(self, uuid: str, image_id: str) -> None:
        """The agent copies the root disk and uploads it to the queued Glance record."""
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != st.IMAGE_SNAPSHOT:
                await self.images.set_image_status(image_id, "killed")
                return
            event = await db.start_event(
                self.store, uuid, "compute_snapshot_instance", inst["host"]
            )
            host = inst["host"] or ""
            timeout = self.config.spawn_timeout
            capability = self.capabilities.grant(host, "PUT", image_file_path(image_id), timeout)
            params = {
                "uuid": uuid,
                "capability": capability,
                "upload_url": self.config.base_url + image_file_path(image_id),
            }
            try:
                await self.hub.call(host, "snapshot", params, timeout=timeout)
                await db.finish_event(self.store, event, True)
            except ProtocolError as exc:
                log.warning("snapshot of %s failed: %s", uuid, exc.message)
                await db.finish_event(self.store, event, False, exc.message)
                await self.images.set_image_status(image_id, "killed")
            finally:
                self.capabilities.revoke(capability)
                await db.update(
                    self.store, uuid, expect_task_state=st.IMAGE_SNAPSHOT, task_state=None
                )

    # ---- reads that need the host ----------------------------------------------------------

    async def do_sync_network(
        self,
        hosts: list[str],
        projects: list[str] | None = None,
        instances: list[str] | None = None,
    ) -> None:
        """Send each connected host its desired network state (mininova/network/hoststate.py)
        with the agent order `network_sync`, and the hosts enforcing a group of `projects`
        what changed in its members, in the pusher's next round (network_push.py); failures
        are logged, never raised. `instances`: the hosts' change concerns only these."""
        await self.network.push(hosts, projects or (), instances or ())

    def _network_changed(self, project_id: str, host: str | None, uuid: str | None = None) -> None:
        """An instance appeared, changed address or went: its host gets its state (with
        `uuid`, only that instance's part of it), and the hosts whose remote-group rules may
        name it what changed in those groups, asynchronously."""
        self.conductor.sync_network(
            [host or ""], projects=[project_id], instances=[uuid] if uuid else ()
        )

    async def do_console_output(self, uuid: str, length: int | None) -> str:
        inst = await db.get(self.store, uuid)
        if inst is None or not inst["host"]:
            raise ProtocolError("not_found", "instance has no host")
        result = await self.hub.call(
            inst["host"], "console_output", {"uuid": uuid, "length": length}, timeout=30
        )
        return str(result.get("output", ""))

    # ---- reports from agents ----------------------------------------------------------------

    async def do_host_connected(
        self, host: str, guests: list[dict[str, Any]], destroy_orphans: bool = False
    ) -> None:
        """An agent (re)connected: reap guests of deleted instances, resync the rest.

        Guests this cloud never knew are reported in the log and left alone, unless the
        agent is configured with `destroy_orphans`."""
        known = {g.get("uuid") for g in guests if isinstance(g, dict)}
        for uuid in known:
            if not isinstance(uuid, str):
                continue
            row = await db.get(self.store, uuid, include_deleted=True)
            if row is not None and row["deleted"]:
                log.info("reaping guest %s of deleted instance on %s", uuid, host)
                try:
                    await self.hub.call(host, "destroy", {"uuid": uuid}, timeout=60)
                except ProtocolError as exc:
                    log.warning("reap of %s failed: %s", uuid, exc.message)
            elif row is None and destroy_orphans:
                log.warning("destroying guest %s on %s: unknown to this cloud", uuid, host)
                try:
                    await self.hub.call(host, "destroy", {"uuid": uuid}, timeout=60)
                except ProtocolError as exc:
                    log.warning("destroy of orphan %s failed: %s", uuid, exc.message)
            elif row is None:
                log.warning(
                    "host %s runs guest %s that this cloud does not know; left alone", host, uuid
                )
        await self.reconcile_moves(host, {u for u in known if isinstance(u, str)})
        self._settled.pop(host, None)
        # also reaps guests placed elsewhere; a new link's report is always recorded
        await self._sync_power_states(host, guests, record=True)
        # after the sync (which leaves instances with a task alone): settling acts on the
        # report, and the sync would undo that with the report's older power states
        await self.settle_reported(host, guests)  # work a controller restart interrupted
        await self.network.push([host])  # restart reconciliation: the whole state, now

    async def do_sync_power_states(self, host: str, guests: list[dict[str, Any]]) -> None:
        """A heartbeat's report. In the steady state (the same report as the last one, no
        instance or migration written since, and that last sync found nothing to do) it
        costs no query: idle hosts are most of a lab's heartbeats."""
        now = monotonic()
        generations = (self.store.generation("instances"), self.store.generation("migrations"))
        last = self._settled.get(host)
        if last is not None and last[0] == generations and last[1] == guests and now < last[2]:
            return
        self._settled.pop(host, None)
        if await self._sync_power_states(host, guests):
            # scale-out seam: other controllers' writes do not move the generations; the
            # deadline bounds how long a settled host goes without a full comparison.
            self._settled[host] = (generations, guests, now + SETTLED_RESYNC_SECONDS)

    async def _sync_power_states(
        self, host: str, guests: list[dict[str, Any]], *, record: bool = False
    ) -> bool:
        """Land `host`'s report on its instances; True if there was nothing to do (every
        placed instance reported, none with a task or an action under way, none misplaced)."""
        if record or self._recorded.get(host) != guests:  # for `mininova doctor`
            await guest_reports.record(self.store, host, guests, now_iso())
            self._recorded[host] = guests
        reported = {
            g["uuid"]: g for g in guests if isinstance(g, dict) and isinstance(g.get("uuid"), str)
        }
        placed: set[str] = set()
        settled = True
        for inst in await db.power_sync_view(self.store, host):
            uuid = inst["uuid"]
            placed.add(uuid)
            if inst["task_state"] is not None or self._lock(uuid).locked():
                settled = False
            guest = reported.get(uuid)
            if guest is None:
                settled = False
                await self._guest_missing(uuid)
                continue
            self._missing.pop(uuid, None)
            power = guest.get("power_state")
            if isinstance(power, int):
                await self._apply_power_state(uuid, power, guest.get("addresses"), inst)
        # A spawn the host finished after its build had failed over (its link was cut, e.g.
        # a stopped agent) left a guest of an instance that lives elsewhere now.
        misplaced = set(reported) - placed
        if misplaced:
            settled = False
            await self.reap_misplaced(host, misplaced)
        return settled

    async def do_instance_event(self, host: str, uuid: str, power_state: int) -> None:
        inst = await db.get(self.store, uuid)
        if inst is None or inst["host"] != host:
            return
        await self._apply_power_state(uuid, power_state, None)

    async def _apply_power_state(
        self, uuid: str, power: int, addresses: Any, inst: dict[str, Any] | None = None
    ) -> None:
        """Land a reported power state on a settled instance (`inst`: its row, if read)."""
        if inst is None:
            inst = await db.get(self.store, uuid)
        if inst is None or inst["task_state"] is not None or self._lock(uuid).locked():
            return
        changes: dict[str, Any] = {}
        if power != inst["power_state"]:
            changes["power_state"] = power
        target = st.vm_state_for_power(power, inst["vm_state"])
        if target is not None:
            log.info("power sync: %s %s → %s", uuid, inst["vm_state"], target)
            changes["vm_state"] = target
        if isinstance(addresses, list) and addresses and addresses != inst["addresses"]:
            changes["addresses"] = addresses
        if changes:
            landed = await db.update(self.store, uuid, expect_task_state=None, **changes)
            if landed and "addresses" in changes:
                row = inst if "project_id" in inst else await db.get(self.store, uuid)
                if row is not None:
                    self._network_changed(row["project_id"], row["host"], uuid)

    async def _guest_missing(self, uuid: str) -> None:
        inst = await db.get(self.store, uuid)
        if (
            inst is None
            or inst["task_state"] is not None
            or inst["vm_state"] in (st.BUILDING, st.ERROR)
            or self._lock(uuid).locked()
        ):
            self._missing.pop(uuid, None)
            return
        self._missing[uuid] = self._missing.get(uuid, 0) + 1
        if self._missing[uuid] < MISSING_SWEEPS:
            return
        self._missing.pop(uuid, None)
        message = f"Instance {uuid} vanished from its host {inst['host']}."
        log.warning("%s", message)
        await db.update(
            self.store,
            uuid,
            expect_task_state=None,
            vm_state=st.ERROR,
            power_state=st.NOSTATE,
            fault=db.fault(message),
        )

    # ---- start-up -----------------------------------------------------------------------------

    # scale-out seam: scope to instances whose work this controller owned
    async def recover(self) -> None:
        """After a controller restart: resume, settle or fail the work that was in flight,
        and return when all of it is settled (conductor/resume.py)."""
        await self.recover_moves()  # resize / migration (conductor/resize.py)
        rows = await db.in_flight(self.store)
        resumable: list[dict[str, Any]] = []
        for row in rows:
            uuid, task = row["uuid"], row["task_state"]
            if task == st.DELETING:
                self.conductor.delete_instance(uuid)
            elif task == st.SOFT_DELETING:  # power_off/power_on again: both are idempotent
                self.conductor.soft_delete_instance(uuid)
            elif task == st.RESTORING:
                self.conductor.restore_instance(uuid)
            elif row["vm_state"] == st.BUILDING or (task in RESUMABLE_ACTIONS and row["host"]):
                resumable.append(row)
            elif task in st.ERROR_IF_INTERRUPTED:
                await db.update(
                    self.store,
                    uuid,
                    vm_state=st.ERROR,
                    task_state=None,
                    fault=db.fault(f"The controller restarted during the task {task}."),
                )
            else:
                await db.update(self.store, uuid, task_state=None)
        await self.resume_interrupted(resumable)
        await self.await_resumed_work()
