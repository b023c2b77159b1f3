"""The conductor's shelve, shelve offload and unshelve, and the shelved-offload periodic task.

- shelve (task `shelving`): the agent powers the guest off, then snapshots its root disk into
  the image the API created (task `shelving_image_uploading`; the `snapshot` order, as
  createImage uses), and the server lands SHELVED with `shelved_at`, `shelved_image_id` and
  `shelved_host` in its system_metadata. With `shelved_offload_time` 0 it is offloaded at once.
- shelve offload (task `shelving_offloading`): the guest and its files are destroyed on the host
  (`destroy`), the claim is released and host is cleared: SHELVED_OFFLOADED.
- unshelve (task `unshelving`): a SHELVED server is powered on where it is; a
  SHELVED_OFFLOADED one is scheduled like a build (task `spawning` on the chosen host) with the
  shelved image as its image. Success: ACTIVE, the shelved image deleted, the keys cleared. A
  failure clears the task and leaves the vm_state as it was, with a fault (Nova's behaviour).
- `poll_shelved_instances` (a bus call; every `shelved_poll_interval` s when
  `shelved_offload_time` > 0) offloads servers SHELVED for longer than
  `shelved_offload_time`, read from timeutil's clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova.conductor.specs import CurrentServer, Placement, Spawned, image_file_path
from mininova.protocol import ProtocolError
from mininova.store import instances as db
from mininova.timeutil import now_iso, now_utc, parse_iso

if TYPE_CHECKING:
    from mininova.agenthub import AgentHub
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.config import ServeConfig
    from mininova.consoleauth.client import ConsoleAuthClient
    from mininova.image.client import ImageClient
    from mininova.scheduler.client import SchedulerClient
    from mininova.store import Store
    from mininova.trust.capabilities import Capabilities

log = logging.getLogger(__name__)

SHELVED_KEYS = ("shelved_at", "shelved_image_id", "shelved_host")


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, ProtocolError) else str(exc) or type(exc).__name__


def _without_shelved_keys(sysmeta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sysmeta.items() if k not in SHELVED_KEYS}


class ShelveMixin:
    """The shelve handlers of `mininova.conductor.Conductor` (which provides these)."""

    config: ServeConfig
    store: Store
    hub: AgentHub
    capabilities: Capabilities
    scheduler: SchedulerClient
    images: ImageClient
    consoleauth: ConsoleAuthClient
    conductor: ConductorAPI

    def _lock(self, uuid: str) -> asyncio.Lock:
        raise NotImplementedError

    def _network_changed(self, project_id: str, host: str | None) -> None:
        raise NotImplementedError

    async def _schedule_and_spawn(
        self, uuid: str, current: CurrentServer, placement: Placement
    ) -> Spawned | str | None:
        raise NotImplementedError

    async def _fail(
        self, uuid: str, task: str | tuple[str, ...], message: str, **changes: Any
    ) -> None:
        """Clear the task `task` (its vm_state stays unless `changes` say otherwise), with a
        fault naming why."""
        log.warning("%s", message)
        await db.update(
            self.store,
            uuid,
            expect_task_state=task,
            task_state=None,
            fault=db.fault(message),
            **changes,
        )

    async def _land(self, uuid: str, spec: st.Action, expect: str, **changes: Any) -> bool:
        """The action's landing vm_state and power_state (`changes` may override the power
        state), its task cleared, if the task is still `expect`."""
        return await db.update(
            self.store,
            uuid,
            expect_task_state=expect,
            vm_state=spec.lands_vm_state,
            task_state=None,
            **{"power_state": spec.lands_power_state, **changes},
        )

    async def drop_shelved_image(self, inst: dict[str, Any]) -> None:
        """A deleted shelved server's snapshot goes with it (nothing can unshelve it now)."""
        image_id = (inst.get("system_metadata") or {}).get("shelved_image_id")
        if inst["vm_state"] not in st.SHELVED_STATES or not image_id:
            return
        try:
            await self.images.delete_image(image_id)
        except Exception as exc:  # the delete itself has happened; the image can be removed
            log.warning("shelved image %s of %s stays: %s", image_id, inst["uuid"], exc)

    # ---- shelve ---------------------------------------------------------------------------

    async def do_shelve_instance(self, uuid: str, image_id: str) -> None:
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != st.SHELVING:
                await self.images.set_image_status(image_id, "killed")
                return
            host = inst["host"] or ""
            timeout = self.config.action_timeout
            event = await db.start_event(self.store, uuid, "compute_shelve_instance", host)
            try:
                await self.hub.call(host, "power_off", {"uuid": uuid}, timeout=timeout)
            except ProtocolError as exc:
                await db.finish_event(self.store, event, False, exc.message)
                await self.images.set_image_status(image_id, "killed")
                await self._fail(uuid, st.SHELVING, f"Shelve of {uuid} failed: {exc.message}")
                return
            if not await db.update(
                self.store,
                uuid,
                expect_task_state=st.SHELVING,
                task_state=st.SHELVING_IMAGE_UPLOADING,
                power_state=st.SHUTDOWN,
            ):
                await self.images.set_image_status(image_id, "killed")
                return
            upload = image_file_path(image_id)
            capability = self.capabilities.grant(host, "PUT", upload, self.config.spawn_timeout)
            params = {
                "uuid": uuid,
                "capability": capability,
                "upload_url": self.config.base_url + upload,
            }
            try:
                await self.hub.call(host, "snapshot", params, timeout=self.config.spawn_timeout)
            except ProtocolError as exc:
                await db.finish_event(self.store, event, False, exc.message)
                await self.images.set_image_status(image_id, "killed")
                # the guest is off now: it is a stopped server that was not shelved
                await self._fail(
                    uuid,
                    st.SHELVING_IMAGE_UPLOADING,
                    f"Shelve of {uuid} failed: {exc.message}",
                    vm_state=st.STOPPED,
                )
                return
            finally:
                self.capabilities.revoke(capability)
            await db.finish_event(self.store, event, True)
            sysmeta = {
                **inst["system_metadata"],
                "shelved_at": now_iso(),
                "shelved_image_id": image_id,
                "shelved_host": host,
            }
            spec = st.ACTIONS["shelve"]
            landed = await self._land(
                uuid, spec, st.SHELVING_IMAGE_UPLOADING, system_metadata=sysmeta
            )
            log.info("instance %s shelved into image %s", uuid, image_id)
            if landed and self.config.shelved_offload_time == 0:
                await self._start_offload(uuid)

    async def _start_offload(self, uuid: str) -> None:
        """Offload a settled SHELVED server now (the caller holds its lock)."""
        inst = await db.get(self.store, uuid)
        if inst is None or inst["vm_state"] != st.SHELVED:
            return
        if await db.update(
            self.store,
            uuid,
            expect_task_state=None,
            task_state=st.ACTIONS["shelve_offload"].task_state,
        ):
            await self._offload(inst)

    # ---- shelve offload -------------------------------------------------------------------

    async def do_shelve_offload_instance(self, uuid: str) -> None:
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != st.SHELVING_OFFLOADING:
                return
            await self._offload(inst)

    async def _offload(self, inst: dict[str, Any]) -> None:
        uuid, host = inst["uuid"], inst["host"]
        spec = st.ACTIONS["shelve_offload"]
        event = await db.start_event(self.store, uuid, "compute_shelve_offload_instance", host)
        if host:
            try:
                await self.hub.call(
                    host, spec.agent_method, {"uuid": uuid}, timeout=self.config.action_timeout
                )
            except ProtocolError as exc:
                await db.finish_event(self.store, event, False, exc.message)
                await self._fail(
                    uuid, spec.task_state, f"Shelve offload of {uuid} failed: {exc.message}"
                )
                return
        await db.finish_event(self.store, event, True)
        landed = await self._land(uuid, spec, spec.task_state, host=None)
        await self.scheduler.release(uuid)  # its claim, in the database and in memory
        self.consoleauth.revoke_instance(uuid)
        if landed:
            log.info("instance %s offloaded from %s", uuid, host)
            self._network_changed(inst["project_id"], host)

    # ---- unshelve -------------------------------------------------------------------------

    async def do_unshelve_instance(self, uuid: str, host: str | None = None) -> None:
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != st.UNSHELVING:
                return
            if inst["vm_state"] == st.SHELVED:
                await self._unshelve_in_place(inst)
            else:
                await self._unshelve_offloaded(inst, host)

    async def _landed_unshelved(self, inst: dict[str, Any], expect: str, **changes: Any) -> bool:
        """ACTIVE, the shelved keys cleared, then the shelved image deleted."""
        spec = st.ACTIONS["unshelve"]
        sysmeta = inst["system_metadata"]
        landed = await self._land(
            inst["uuid"], spec, expect, system_metadata=_without_shelved_keys(sysmeta), **changes
        )
        image_id = sysmeta.get("shelved_image_id")
        if landed and image_id:
            try:
                await self.images.delete_image(str(image_id))
            except Exception:  # the server is up; a leftover image is only a log line
                log.exception("cannot delete the shelved image %s of %s", image_id, inst["uuid"])
        return landed

    async def _unshelve_in_place(self, inst: dict[str, Any]) -> None:
        uuid, host = inst["uuid"], inst["host"] or ""
        event = await db.start_event(self.store, uuid, "compute_unshelve_instance", host)
        try:
            await self.hub.call(
                host, "power_on", {"uuid": uuid}, timeout=self.config.action_timeout
            )
        except ProtocolError as exc:
            await db.finish_event(self.store, event, False, exc.message)
            await self._fail(uuid, st.UNSHELVING, f"Unshelve of {uuid} failed: {exc.message}")
            return
        await db.finish_event(self.store, event, True)
        await self._landed_unshelved(inst, st.UNSHELVING)

    async def _unshelve_offloaded(self, inst: dict[str, Any], force_host: str | None) -> None:
        """Schedule and spawn from the shelved image, trying up to `build_retries` hosts."""
        uuid = inst["uuid"]
        image_id = inst["system_metadata"].get("shelved_image_id")
        if not image_id:
            await self._fail(uuid, st.UNSHELVING, f"Instance {uuid} has no shelved image.")
            return
        spawn_inst = {**inst, "image_ref": image_id}

        async def current() -> tuple[dict[str, Any], str | None]:
            return spawn_inst, force_host

        placement = Placement(
            from_task=st.UNSHELVING,
            schedule_event="schedule_instances",
            spawn_event="compute_unshelve_instance",
            failure=lambda host, exc: (
                f"Unshelve of instance {uuid} failed on {host}: " + _message(exc)
            ),
        )
        outcome = await self._schedule_and_spawn(uuid, current, placement)
        if outcome is None:
            return
        if isinstance(outcome, Spawned):
            info = outcome.info
            if await self._landed_unshelved(
                inst,
                st.SPAWNING,
                power_state=int(info.get("power_state", st.RUNNING)),
                addresses=info.get("addresses") or [],
                launched_at=now_iso(),
            ):
                log.info("instance %s unshelved on %s", uuid, outcome.host)
                self._network_changed(inst["project_id"], outcome.host)
            return
        await self._fail(uuid, (st.UNSHELVING, st.SPAWNING), outcome, host=None)

    # ---- the periodic offload -------------------------------------------------------------

    async def do_poll_shelved_instances(self) -> int:
        """Offload the servers SHELVED for `shelved_offload_time` seconds or more; how many.

        Nothing is offloaded by this task when `shelved_offload_time` is 0 (shelve offloads at
        once) or -1 (never automatically)."""
        offload_after = self.config.shelved_offload_time
        if offload_after <= 0:
            return 0
        now = now_utc()
        due = []
        for row in await db.settled_in_state(self.store, st.SHELVED):
            shelved_at = row["system_metadata"].get("shelved_at")
            try:
                when = parse_iso(str(shelved_at))
            except ValueError:
                continue
            if now - when >= timedelta(seconds=offload_after):
                due.append(row["uuid"])
        for uuid in due:
            async with self._lock(uuid):
                await self._start_offload(uuid)
        return len(due)

    async def run_shelved_poller(self) -> None:
        """Every `shelved_poll_interval` seconds, `poll_shelved_instances` (a controller task)."""
        while True:
            await asyncio.sleep(max(0.05, self.config.shelved_poll_interval))
            try:
                await self.do_poll_shelved_instances()
            except Exception:  # the poller must outlive a failed pass
                log.exception("shelved-offload poll failed")
