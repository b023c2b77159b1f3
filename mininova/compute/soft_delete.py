"""Soft delete, restore and forceDelete (API side, like Nova's compute API).

With `reclaim_instance_interval` > 0 a DELETE of a settled, placed server is a soft delete:
the `delete` instance action is recorded, `deleted_at` set and task_state `soft-deleting`,
then the conductor powers the guest off and lands it in `soft-delete` (SOFT_DELETED). The
server keeps its host allocation and quota; `restore` powers it back on, `forceDelete` (or
the conductor's reaper, once the interval passed) deletes it through the normal delete path.
Which states allow what lives in `mininova.instance_states`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mininova import instance_states as st
from mininova.compute.api import check_locked, may_start, start_task
from mininova.errors import Conflict
from mininova.store import soft_deletes
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.compute.api import Caller
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.store import Store
    from mininova.store.engine import Row


async def soft_delete_server(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row
) -> None:
    """Record the delete, mark the server soft-deleting (guarded: no task started
    meanwhile, else 409) and cast the power-off. The caller checked the lock and
    `instance_states.delete_path`."""
    spec = st.ACTIONS["soft_delete"]
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, "delete", task_state=spec.task_state)
        await soft_deletes.set_deleted_at(tx, inst["uuid"], now_iso())
    conductor.soft_delete_instance(inst["uuid"])


async def restore_server(store: Store, conductor: ConductorAPI, caller: Caller, inst: Row) -> None:
    """`restore`: only a SOFT_DELETED server with no task running (else 409)."""
    spec = may_start(caller, inst, st.check_action, "restore")
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, "restore", task_state=spec.task_state)
    conductor.restore_instance(inst["uuid"])


async def force_delete_server(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row
) -> None:
    """`forceDelete`: the normal delete, now, whatever the vm_state (no task may run)."""
    check_locked(caller, inst)
    try:
        st.check_force_delete(inst["task_state"])
    except st.InvalidState as exc:
        raise Conflict(f"{exc}") from None
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, "forceDelete", task_state=st.DELETING)
    conductor.delete_instance(inst["uuid"])
