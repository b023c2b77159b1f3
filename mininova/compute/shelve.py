"""Shelve, shelve offload and unshelve (the shelve part of nova.compute.api).

Each operation checks the state machine (`instance_states.ACTIONS`: `shelve`,
`shelve_offload`, `unshelve`), sets the task state with a guarded update, records the
instance action (os-instance-actions `shelve`, `shelveOffload`, `unshelve`) and casts the
conductor (`mininova/conductor/shelve.py`), which does the work on the host.

`shelve` creates the snapshot's Glance record ("<server name>-shelved", private, owned by
the server's project, `queued`) before answering, as `createImage` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mininova import instance_states as st
from mininova.compute.api import Caller, check_locked, start_task
from mininova.errors import Conflict, Invalid
from mininova.image import store_ops
from mininova.image.limits import ImageLimits
from mininova.store import hosts

if TYPE_CHECKING:
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.store import Store
    from mininova.store.engine import Row


def _check(action: str, nova_name: str, inst: Row) -> st.Action:
    try:
        return st.check_action(action, inst["vm_state"], inst["task_state"])
    except st.InvalidState:
        raise Conflict(
            f"Cannot '{nova_name}' instance {inst['uuid']} while it is in "
            f"vm_state {inst['vm_state']}"
            + (f" / task_state {inst['task_state']}" if inst["task_state"] else "")
        ) from None


async def _start(
    store: Store, caller: Caller, inst: Row, spec: st.Action, nova_name: str, **changes: object
) -> None:
    """Set the action's task state (only if no task runs) and record the action."""
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, nova_name, task_state=spec.task_state, **changes)


async def shelve(
    store: Store,
    conductor: ConductorAPI,
    caller: Caller,
    inst: Row,
    image_limits: ImageLimits | None = None,
) -> str:
    """Start shelving; the id of the (queued) image the root disk is snapshotted into (it
    counts against the project's `image_count_total`: 403 and nothing started when full)."""
    check_locked(caller, inst)
    spec = _check("shelve", "shelve", inst)
    async with store.transaction() as tx:
        await _start(tx.store, caller, inst, spec, "shelve")
        image = await store_ops.create_snapshot_record(
            tx,
            image_limits,
            owner=inst["project_id"],
            name=f"{inst['name']}-shelved",
            disk_format="qcow2",
            visibility="private",
            min_disk=int(inst["flavor"].get("disk") or 0),
            properties={
                "instance_uuid": inst["uuid"],
                "image_type": "snapshot",
                "base_image_ref": inst["image_ref"],
            },
        )
    conductor.shelve_instance(inst["uuid"], str(image["id"]))
    return str(image["id"])


async def shelve_offload(store: Store, conductor: ConductorAPI, caller: Caller, inst: Row) -> None:
    """Start removing a SHELVED server from its host (admin: the API checks the policy)."""
    check_locked(caller, inst)
    spec = _check("shelve_offload", "shelveOffload", inst)
    await _start(store, caller, inst, spec, "shelveOffload")
    conductor.shelve_offload_instance(inst["uuid"])


@dataclass
class UnshelveRequest:
    """What an unshelve body asks for (2.77+: a zone; 2.91+: a host, or unpinning the zone)."""

    zone_given: bool = False
    availability_zone: str | None = None  # with zone_given: the new zone (None: unpin)
    host: str | None = None


async def unshelve(
    store: Store,
    conductor: ConductorAPI,
    caller: Caller,
    inst: Row,
    req: UnshelveRequest | None = None,
) -> None:
    """Start unshelving: power on in place (SHELVED) or schedule anew (SHELVED_OFFLOADED)."""
    req = req or UnshelveRequest()
    check_locked(caller, inst)
    spec = _check("unshelve", "unshelve", inst)
    if (req.zone_given or req.host) and inst["vm_state"] != st.SHELVED_OFFLOADED:
        raise Conflict(
            "Specifying an availability zone or a host when unshelving server "
            f"{inst['uuid']} with status {st.status(inst['vm_state'], None)} is not supported. "
            "The server status must be SHELVED_OFFLOADED."
        )
    changes: dict[str, object] = {}
    if req.zone_given:
        zone = req.availability_zone
        if zone is not None and not await hosts.zone_exists(store, zone):
            raise Invalid(f"The requested availability zone is not available: {zone}")
        changes["availability_zone"] = zone
    if req.host is not None and await hosts.get_node(store, req.host) is None:
        raise Invalid(f"Compute host {req.host} could not be found.")
    await _start(store, caller, inst, spec, "unshelve", **changes)
    conductor.unshelve_instance(inst["uuid"], req.host)
