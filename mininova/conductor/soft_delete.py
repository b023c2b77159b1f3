"""Soft delete on the conductor side: power the guest off or on, and the reclaim reaper.

`SoftDeletes` is mixed into `Conductor`: its `do_*` methods are bus methods like the others.

* `soft_delete_instance`: the API set task_state `soft-deleting` and `deleted_at`; the guest is
  powered off (agent `power_off`) and the instance lands in `soft-delete` (SOFT_DELETED). Its
  allocation, quota, files and network stay. When the host is unreachable it lands there all
  the same (Nova's local soft delete; the guest keeps its power state until it is reaped or
  restored); any other failure puts it back as it was, with the failed event.
* `restore_instance`: the guest is powered on (agent `power_on`) and the instance is ACTIVE
  again, `deleted_at` cleared; on failure it stays SOFT_DELETED.
* `reclaim_instances`: the reaper: every SOFT_DELETED instance with no task whose `deleted_at`
  is `reclaim_instance_interval` seconds old (on `mininova.timeutil`'s clock, so a test can
  move it) is deleted through the normal delete path (guest destroyed, allocation released).
  `reclaim_loop` runs it every min(interval, 60) seconds.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from mininova import instance_states as st
from mininova.agenthub import HostUnavailable
from mininova.protocol import ProtocolError
from mininova.store import instances as db
from mininova.store import soft_deletes
from mininova.timeutil import iso, now_utc

if TYPE_CHECKING:
    from mininova.agenthub import AgentHub
    from mininova.config import ServeConfig
    from mininova.store import Store

log = logging.getLogger(__name__)

# The longest wait between two reaper passes (s); shorter intervals poll every interval.
MAX_RECLAIM_POLL = 60.0


class SoftDeletes:
    """Conductor mixin: soft delete, restore and the reclaim reaper."""

    if TYPE_CHECKING:
        config: ServeConfig
        store: Store
        hub: AgentHub

        def _lock(self, uuid: str) -> asyncio.Lock: ...

        async def do_delete_instance(self, uuid: str) -> None: ...

    async def do_soft_delete_instance(self, uuid: str) -> None:
        await self._power_transition(uuid, "soft_delete")

    async def do_restore_instance(self, uuid: str) -> None:
        await self._power_transition(uuid, "restore")

    async def _power_transition(self, uuid: str, action: str) -> None:
        """Run `action`'s agent order and land it as instance_states.ACTIONS says."""
        spec = st.ACTIONS[action]
        async with self._lock(uuid):
            inst = await db.get(self.store, uuid)
            if inst is None or inst["task_state"] != spec.task_state:
                return  # deleted or taken over (a hard delete) meanwhile
            host = inst["host"] or ""
            event = await db.start_event(self.store, uuid, f"compute_{action}_instance", host)
            power = spec.lands_power_state
            try:
                await self.hub.call(
                    host, spec.agent_method, {"uuid": uuid}, timeout=self.config.action_timeout
                )
            except HostUnavailable as exc:
                if action != "soft_delete":
                    await self._failed(uuid, spec, event, exc.message)
                    return
                # Nova's local soft delete: the host is gone, the delete still happens.
                log.warning("soft delete of %s: host %s unreachable", uuid, host)
                await db.finish_event(self.store, event, False, exc.message)
                event = None
                power = inst["power_state"]
            except ProtocolError as exc:
                if action == "soft_delete":
                    await soft_deletes.set_deleted_at(self.store, uuid, None)
                await self._failed(uuid, spec, event, exc.message)
                return
            if event is not None:
                await db.finish_event(self.store, event, True)
            async with self.store.transaction() as tx:
                landed = await db.update(
                    tx,
                    uuid,
                    expect_task_state=spec.task_state,
                    vm_state=spec.lands_vm_state,
                    power_state=power,
                    task_state=None,
                )
                if landed and action == "restore":
                    await soft_deletes.set_deleted_at(tx, uuid, None)
            log.info("instance %s: %s → %s", uuid, action, spec.lands_vm_state)

    async def _failed(self, uuid: str, spec: st.Action, event: int | None, message: str) -> None:
        log.warning("%s of %s failed: %s", spec.name, uuid, message)
        await db.finish_event(self.store, event, False, message)
        await db.update(self.store, uuid, expect_task_state=spec.task_state, task_state=None)

    # ---- the reaper -------------------------------------------------------------------------

    async def do_reclaim_instances(self) -> list[str]:
        """Delete every soft-deleted instance older than the interval; their uuids."""
        interval = self.config.reclaim_instance_interval
        if interval <= 0:
            return []
        cutoff = iso(now_utc() - timedelta(seconds=interval))
        reclaimed: list[str] = []
        for uuid in await soft_deletes.reclaimable(self.store, st.SOFT_DELETED, cutoff):
            # Guarded: a restore or forceDelete that started meanwhile wins.
            if not await soft_deletes.start_reclaim(
                self.store, uuid, st.SOFT_DELETED, cutoff, st.DELETING
            ):
                continue
            log.info("reclaiming soft-deleted instance %s", uuid)
            await self.do_delete_instance(uuid)
            reclaimed.append(uuid)
        return reclaimed

    async def reclaim_loop(self) -> None:
        """The periodic reaper (started by the controller when the interval is > 0)."""
        interval = self.config.reclaim_instance_interval
        poll = min(float(interval), MAX_RECLAIM_POLL)
        while True:
            await asyncio.sleep(poll)
            try:
                await self.do_reclaim_instances()
            except Exception:  # the loop must outlive one bad pass
                log.exception("reclaim of soft-deleted instances failed")
