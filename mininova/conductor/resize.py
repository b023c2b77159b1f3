"""Resize and cold migration in the conductor (Nova's migrate_server / prep_resize /
resize_instance / finish_resize, confirm and revert), one machinery for both.

Claims follow Nova's migration-based allocations: while a move runs and until it is confirmed
or reverted, the OLD flavor stays claimed on the source host under the migration's uuid and
the NEW flavor is claimed on the destination under the instance's uuid (the scheduler's claim).
Confirm drops the migration's claim; revert drops the instance's and moves the old one back.

The guest moves in three agent orders: `resize_prepare` on the source (power off, keep the
old guest aside, and for another host stream its root disk to the controller:
conductor/migration_transfer.py), `finish_resize` on the destination (new disk grown to the
new flavor — from the kept copy on the same host, else downloaded from the controller and
checked — new definition, started if it ran before), then `confirm_resize` on the source (drop
the kept copy) or, for a revert, `destroy` on the destination and `finish_revert_resize` on
the source (the old guest back as it was). A failure before the guest runs on the destination
puts it back on the source (ACTIVE or SHUTOFF as before) with an instance fault and a failed
action event; the migration ends in 'error'.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova import timeutil
from mininova.conductor import migration_transfer as transfer
from mininova.conductor.specs import image_file_path, instance_spec
from mininova.errors import NoValidHost
from mininova.protocol import ProtocolError
from mininova.scheduler import Request
from mininova.store import allocations, migrations, server_groups
from mininova.store import instances as db
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.agenthub import AgentHub
    from mininova.config import ServeConfig
    from mininova.scheduler.client import SchedulerClient
    from mininova.store import Store
    from mininova.trust.capabilities import Capabilities

log = logging.getLogger(__name__)


_MOVE_TASKS = (st.RESIZE_PREP, st.RESIZE_MIGRATING, st.RESIZE_MIGRATED, st.RESIZE_FINISH)


def _quota_columns(flavor: dict[str, Any]) -> dict[str, Any]:
    return {
        "flavor": flavor,
        "flavor_id": str(flavor["id"]),
        "vcpus": int(flavor["vcpus"]),
        "memory_mb": int(flavor["ram"]),
        "root_gb": int(flavor["disk"]),
    }


def _disk_gb(flavor: dict[str, Any]) -> int:
    return int(flavor["disk"]) + int(flavor.get("ephemeral") or 0)


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, ProtocolError) else str(exc) or type(exc).__name__


class ResizeOps:
    """The conductor's resize/migrate/confirm/revert handlers (mixed into `Conductor`)."""

    config: ServeConfig
    store: Store
    hub: AgentHub
    capabilities: Capabilities
    scheduler: SchedulerClient

    if TYPE_CHECKING:

        def _lock(self, uuid: str) -> asyncio.Lock: ...

        def _network_changed(self, project_id: str, host: str | None) -> None: ...

        async def _recorded_call(
            self, uuid: str, event_name: str, host: str, method: str, failure_log: str
        ) -> bool: ...

    # ---- claims --------------------------------------------------------------------------

    async def _hold_old_claim(self, uuid: str, migration_uuid: str, host: str, old: dict) -> None:
        """The old flavor's claim on the source moves from the instance to the migration."""
        await self._move_claim(host, old, from_consumer=uuid, to_consumer=migration_uuid)

    async def _restore_old_claim(
        self, uuid: str, migration_uuid: str, host: str, old: dict
    ) -> None:
        """Back to one claim: the instance's, for the old flavor on the source."""
        await self._move_claim(host, old, from_consumer=migration_uuid, to_consumer=uuid)

    async def _move_claim(
        self, host: str, flavor: dict, *, from_consumer: str, to_consumer: str
    ) -> None:
        """In one transaction: `to_consumer` claims `flavor` on `host`, `from_consumer`'s claim
        is released."""
        async with self.store.transaction() as tx:
            await tx.lock(f"host:{host}")
            await allocations.claim(
                tx,
                to_consumer,
                host,
                int(flavor["vcpus"]),
                int(flavor["ram"]),
                _disk_gb(flavor),
            )
            await allocations.release(tx, from_consumer)

    # ---- resize / migrate ---------------------------------------------------------------------

    async def do_resize_instance(
        self, uuid: str, migration_uuid: str, host: str | None = None
    ) -> None:
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            migration = await migrations.get(self.store, migration_uuid)
            if migration is None:
                return
            if inst is None or inst["task_state"] != st.RESIZE_PREP:
                await migrations.set_status(self.store, migration_uuid, "error", now_iso())
                return
            await self._move(inst, migration, host)

    async def _move(self, inst: dict, migration: dict, host: str | None) -> None:
        uuid, migration_uuid = inst["uuid"], migration["uuid"]
        old, new = migration["old_flavor"], migration["new_flavor"]
        source = migration["source_compute"]
        same_host_ok = (
            self.config.allow_resize_to_same_host and migration["migration_type"] == "resize"
        )
        await self._hold_old_claim(uuid, migration_uuid, source, old)
        event = await db.start_event(self.store, uuid, "conductor_migrate_server", None)
        request = Request(
            uuid,
            int(new["vcpus"]),
            int(new["ram"]),
            _disk_gb(new),
            inst["availability_zone"] or None,
            () if same_host_ok else (source,),
            host,
            await server_groups.group_of(self.store, uuid),
        )
        try:
            dest = await self.scheduler.select_and_claim(request)
        except NoValidHost as exc:
            await db.finish_event(self.store, event, False, str(exc))
            await self._restore_old_claim(uuid, migration_uuid, source, old)
            await self._roll_back(inst, migration, str(exc))
            return
        await db.finish_event(self.store, event, True)
        await migrations.set_dest(self.store, migration_uuid, dest, "migrating", now_iso())
        await db.update(
            self.store, uuid, expect_task_state=st.RESIZE_PREP, task_state=st.RESIZE_MIGRATING
        )
        same = dest == source
        was_running = inst["power_state"] == st.RUNNING
        timeout = self.config.migration_timeout

        # 1. the source powers the guest off and keeps it aside (and uploads its disk)
        event = await db.start_event(self.store, uuid, "compute_resize_instance", source)
        upload = (
            None
            if same
            else transfer.start(self.config, self.capabilities, migration_uuid, source, timeout)
        )
        try:
            params: dict[str, Any] = {"uuid": uuid, **(upload.source_params() if upload else {})}
            prepared = await self.hub.call(source, "resize_prepare", params, timeout=timeout)
            disk = upload.finish(prepared) if upload else None
        except (ProtocolError, OSError, ValueError) as exc:
            message = f"Resize of instance {uuid} failed on its host {source}: {_message(exc)}"
            await db.finish_event(self.store, event, False, message)
            if upload is not None:
                upload.close()
            await self.scheduler.release(uuid)
            await self._restore_old_claim(uuid, migration_uuid, source, old)
            await self._revert_source(source, uuid, was_running)
            await self._roll_back(inst, migration, message)
            return
        await db.finish_event(self.store, event, True)
        await migrations.set_status(self.store, migration_uuid, "post-migrating", now_iso())
        await db.update(
            self.store, uuid, expect_task_state=st.RESIZE_MIGRATING, task_state=st.RESIZE_MIGRATED
        )

        # 2. the destination builds the guest with the new flavor
        await db.update(
            self.store, uuid, expect_task_state=st.RESIZE_MIGRATED, task_state=st.RESIZE_FINISH
        )
        event = await db.start_event(self.store, uuid, "compute_finish_resize", dest)
        image_cap = self.capabilities.grant(
            dest, "GET", image_file_path(inst["image_ref"]), timeout
        )
        download = disk.grant_download(self.capabilities, dest, timeout) if disk else None
        try:
            spec = await instance_spec(self.store, self.config, {**inst, "flavor": new}, image_cap)
            params = {"instance": spec, "power_on": was_running, "same_host": same}
            if download is not None:
                params["disk"] = download
            info = await self.hub.call(dest, "finish_resize", params, timeout=timeout)
        except (ProtocolError, OSError, ValueError) as exc:
            message = f"Resize of instance {uuid} failed on {dest}: {_message(exc)}"
            log.warning("%s; back to %s", message, source)
            await db.finish_event(self.store, event, False, message)
            if not same:
                await self._best_effort(dest, "destroy", {"uuid": uuid})
            else:
                await self._best_effort(dest, "destroy", {"uuid": uuid, "keep_resize": True})
            await self.scheduler.release(uuid)
            await self._restore_old_claim(uuid, migration_uuid, source, old)
            await self._revert_source(source, uuid, was_running)
            await self._roll_back(inst, migration, message)
            return
        finally:
            self.capabilities.revoke(image_cap)
            if disk is not None:
                disk.close(self.capabilities)
        await db.finish_event(self.store, event, True)
        landed = await db.update(
            self.store,
            uuid,
            expect_task_state=st.RESIZE_FINISH,
            host=dest,
            vm_state=st.RESIZED,
            task_state=None,
            power_state=int(info.get("power_state", st.NOSTATE)),
            addresses=info.get("addresses") or inst["addresses"],
            **{
                k: v
                for k, v in _quota_columns(new).items()
                if k in ("flavor", "flavor_id", "root_gb")
            },
        )
        if not landed:  # deleted meanwhile: nothing of the move may stay on either host
            log.info("instance %s was deleted during its move; dropping both copies", uuid)
            await self._best_effort(dest, "destroy", {"uuid": uuid, "keep_resize": same})
            await self._best_effort(source, "confirm_resize", {"uuid": uuid})
            await self.scheduler.release(migration_uuid)
            await migrations.set_status(self.store, migration_uuid, "error", now_iso())
            return
        await migrations.set_status(self.store, migration_uuid, "finished", now_iso())
        log.info("instance %s resized/migrated %s → %s (VERIFY_RESIZE)", uuid, source, dest)
        self._network_changed(inst["project_id"], dest)
        if not same:
            self._network_changed(inst["project_id"], source)

    async def _best_effort(self, host: str, method: str, params: dict[str, Any]) -> bool:
        try:
            await self.hub.call(host, method, params, timeout=120)
            return True
        except ProtocolError as exc:
            log.warning("%s of %s on %s failed: %s", method, params.get("uuid"), host, exc.message)
            return False

    async def _revert_source(self, source: str, uuid: str, power_on: bool) -> dict[str, Any]:
        """The old guest back on the source as it was (a no-op if it was never moved aside)."""
        try:
            result = await self.hub.call(
                source,
                "finish_revert_resize",
                {"uuid": uuid, "power_on": power_on},
                timeout=self.config.action_timeout,
            )
            return result if isinstance(result, dict) else {}
        except ProtocolError as exc:
            log.warning("restoring %s on %s failed: %s", uuid, source, exc.message)
            return {}

    async def _roll_back(self, inst: dict, migration: dict, message: str) -> None:
        """The move failed and the guest is (back) on its source: as before, plus a fault."""
        old = migration["old_flavor"]
        landing = st.resize_landing(inst["system_metadata"].get("old_vm_state"))
        await db.update(
            self.store,
            inst["uuid"],
            expect_task_state=_MOVE_TASKS,  # never over a delete that started
            host=migration["source_compute"],
            vm_state=landing,
            task_state=None,
            fault=db.fault(message),
            **_quota_columns(old),
        )
        await migrations.set_status(self.store, migration["uuid"], "error", now_iso())
        log.warning("move of %s rolled back: %s", inst["uuid"], message)

    # ---- confirm / revert -----------------------------------------------------------------

    async def _move_to_finish(
        self, uuid: str, migration_uuid: str, task: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The server and its migration, if both exist and the server's task is still `task`."""
        inst = await db.get(self.store, uuid)
        migration = await migrations.get(self.store, migration_uuid)
        if inst is None or migration is None or inst["task_state"] != task:
            return None
        return inst, migration

    async def do_confirm_resize(self, uuid: str, migration_uuid: str) -> None:
        async with self._lock(uuid):
            found = await self._move_to_finish(uuid, migration_uuid, st.RESIZE_CONFIRMING)
            if found is None:
                return
            inst, migration = found
            source = migration["source_compute"]
            # The source is gone or failed: the kept copy is dropped when it returns.
            await self._recorded_call(
                uuid, "compute_confirm_resize", source, "confirm_resize", "confirm of %s on %s: %s"
            )
            await self.scheduler.release(migration_uuid)
            new = migration["new_flavor"]
            landing = st.resize_landing(inst["system_metadata"].get("old_vm_state"))
            if inst["power_state"] != st.RUNNING and landing == st.ACTIVE:
                landing = st.STOPPED if inst["power_state"] == st.SHUTDOWN else landing
            await db.update(
                self.store,
                uuid,
                expect_task_state=st.RESIZE_CONFIRMING,
                vm_state=landing,
                task_state=None,
                **_quota_columns(new),
            )
            await migrations.set_status(self.store, migration_uuid, "confirmed", now_iso())

    async def do_revert_resize(self, uuid: str, migration_uuid: str) -> None:
        async with self._lock(uuid):
            found = await self._move_to_finish(uuid, migration_uuid, st.RESIZE_REVERTING)
            if found is None:
                return
            inst, migration = found
            source, dest = migration["source_compute"], migration["dest_compute"] or ""
            old = migration["old_flavor"]
            landing = st.resize_landing(inst["system_metadata"].get("old_vm_state"))
            event = await db.start_event(self.store, uuid, "compute_revert_resize", dest)
            try:
                await self.hub.call(
                    dest,
                    "destroy",
                    {"uuid": uuid, "keep_resize": dest == source},
                    timeout=self.config.action_timeout,
                )
                info = await self.hub.call(
                    source,
                    "finish_revert_resize",
                    {"uuid": uuid, "power_on": landing == st.ACTIVE},
                    timeout=self.config.action_timeout,
                )
            except ProtocolError as exc:
                message = f"Revert of instance {uuid} failed: {exc.message}"
                await db.finish_event(self.store, event, False, message)
                await db.update(
                    self.store, uuid, expect_task_state=st.RESIZE_REVERTING, task_state=None
                )
                await migrations.set_status(self.store, migration_uuid, "finished", now_iso())
                return
            await db.finish_event(self.store, event, True)
            await self.scheduler.release(uuid)
            await self._restore_old_claim(uuid, migration_uuid, source, old)
            await db.update(
                self.store,
                uuid,
                expect_task_state=st.RESIZE_REVERTING,
                host=source,
                vm_state=landing,
                task_state=None,
                power_state=int((info or {}).get("power_state", st.NOSTATE)),
                addresses=(info or {}).get("addresses") or inst["addresses"],
                **_quota_columns(old),
            )
            await migrations.set_status(self.store, migration_uuid, "reverted", now_iso())
            self._network_changed(inst["project_id"], source)
            if dest != source:
                self._network_changed(inst["project_id"], dest)

    # ---- the resize_confirm_window ------------------------------------------------------------

    async def confirm_expired_resizes(self) -> int:
        """Confirm resized servers that waited longer than `resize_confirm_window` (Nova's
        periodic `_poll_unconfirmed_resizes`); how many were confirmed."""
        window = self.config.resize_confirm_window
        if window <= 0:
            return 0
        now = timeutil.now_utc()
        confirmed = 0
        for migration in await migrations.with_status(self.store, "finished"):
            age = (now - timeutil.parse_iso(migration["updated_at"])).total_seconds()
            if age < window:
                continue
            uuid = migration["instance_uuid"]
            inst = await db.get(self.store, uuid)
            if inst is None or inst["vm_state"] != st.RESIZED or inst["task_state"] is not None:
                continue
            if not await db.update(
                self.store, uuid, expect_task_state=None, task_state=st.RESIZE_CONFIRMING
            ):
                continue
            await migrations.set_status(self.store, migration["uuid"], "confirming", now_iso())
            await db.start_action(
                self.store,
                uuid,
                "confirmResize",
                "req-auto-confirm-" + migration["uuid"],
                inst["user_id"],
                inst["project_id"],
            )
            log.info("auto-confirming resize of %s after %d s", uuid, window)
            await self.do_confirm_resize(uuid, migration["uuid"])
            confirmed += 1
        return confirmed

    async def poll_unconfirmed_resizes(self, interval: float = 10.0) -> None:
        """Run `confirm_expired_resizes` and `drop_moves_of_deleted` forever (a controller
        task)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.confirm_expired_resizes()
                await self.drop_moves_of_deleted()
            except Exception:  # the sweep must never die
                log.exception("resize sweep failed")

    async def drop_moves_of_deleted(self) -> int:
        """A server deleted while it waited in VERIFY_RESIZE: as Nova confirms the resize on
        delete, its migration's claim (the old flavor on the source) is released and the
        source drops its kept copy; how many such migrations were closed."""
        closed = 0
        for migration in await migrations.with_status(self.store, "finished"):
            uuid = migration["instance_uuid"]
            row = await db.get(self.store, uuid, include_deleted=True)
            if row is None or not row["deleted"]:
                continue
            await self._best_effort(migration["source_compute"], "confirm_resize", {"uuid": uuid})
            await self.scheduler.release(migration["uuid"])
            await migrations.set_status(self.store, migration["uuid"], "confirmed", now_iso())
            closed += 1
        return closed

    # ---- a controller restart -------------------------------------------------------------

    async def recover_moves(self) -> None:
        """Moves cut short by a controller restart: confirms and reverts are run again (a
        revert whose hosts are not back yet returns to VERIFY_RESIZE, to be retried); a
        move in flight is rolled back to its source (claims, flavor, state and a fault; the
        source restores the kept guest when it reconnects, see `reconcile_moves`)."""
        for status in ("pre-migrating", "migrating", "post-migrating", "confirming", "reverting"):
            for migration in await migrations.with_status(self.store, status):
                uuid = migration["instance_uuid"]
                inst = await db.get(self.store, uuid)
                if inst is None:
                    await migrations.set_status(self.store, migration["uuid"], "error", now_iso())
                    continue
                if status == "confirming":
                    await self.do_confirm_resize(uuid, migration["uuid"])
                elif status == "reverting":
                    await self.do_revert_resize(uuid, migration["uuid"])
                else:
                    await self.scheduler.release(uuid)
                    await self._restore_old_claim(
                        uuid,
                        migration["uuid"],
                        migration["source_compute"],
                        migration["old_flavor"],
                    )
                    await self._roll_back(
                        inst, migration, "The controller restarted during the resize/migration."
                    )
                    dest = migration["dest_compute"]
                    if dest and status == "post-migrating":  # the new guest may exist there
                        same = dest == migration["source_compute"]
                        await self._best_effort(
                            dest, "destroy", {"uuid": uuid, "keep_resize": same}
                        )
                    await self._revert_source(
                        migration["source_compute"], uuid, inst["power_state"] == st.RUNNING
                    )

    # ---- an agent (re)connected -------------------------------------------------------------

    async def reconcile_moves(self, host: str, guests: set[str]) -> None:
        """Left-overs of moves on a host that was away: a guest built on it by a move that
        then failed or was reverted (the instance lives elsewhere now) is destroyed; a kept
        copy whose resize was confirmed while it was away is dropped."""
        for uuid in sorted(guests):
            row = await db.get(self.store, uuid)
            if row is None or row["host"] == host or row["task_state"] is not None:
                continue
            migration = await migrations.latest_of_instance(self.store, uuid)
            if migration is None or migration["status"] not in ("error", "reverted", "confirmed"):
                continue
            if host not in (migration["source_compute"], migration["dest_compute"]):
                continue
            log.info(
                "reaping %s on %s: left over from its migration %s", uuid, host, migration["uuid"]
            )
            await self._best_effort(host, "destroy", {"uuid": uuid})
        for migration in (await migrations.with_status(self.store, "error"))[-50:]:
            uuid = migration["instance_uuid"]
            if migration["source_compute"] != host or uuid in guests:
                continue
            row = await db.get(self.store, uuid)
            if row is not None and row["host"] == host and row["task_state"] is None:
                # rolled back while this host was away: the kept guest comes back now
                power_on = row["vm_state"] == st.ACTIVE
                info = await self._revert_source(host, uuid, power_on)
                if info.get("power_state") is not None:
                    await db.update(
                        self.store,
                        uuid,
                        expect_task_state=None,
                        power_state=int(info["power_state"]),
                    )
        for migration in (await migrations.with_status(self.store, "confirmed"))[-50:]:
            if migration["source_compute"] == host and migration["dest_compute"] != host:
                await self._best_effort(
                    host, "confirm_resize", {"uuid": migration["instance_uuid"]}
                )
