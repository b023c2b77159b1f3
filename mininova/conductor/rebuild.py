"""Rebuild on the conductor: order the server's agent to rebuild it from its (new) image.

The API already wrote the new image, name, metadata and key to the instance row and set the
task state `rebuilding`; here the agent of the same host gets the order `rebuild` with the
full instance spec (as for `spawn`, with a capability for exactly the image download) and
whether to start the guest. Success lands where the state machine says for the vm_state the
rebuild started from (a stopped server stays stopped); failure is ERROR with a fault.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mininova import instance_states as st
from mininova.conductor.specs import image_file_path, instance_spec
from mininova.protocol import ProtocolError
from mininova.store import instances as db
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.conductor import Conductor

log = logging.getLogger(__name__)


async def rebuild_instance(conductor: Conductor, uuid: str, preserve_ephemeral: bool) -> None:
    """Run one rebuild (the caller holds the instance's conductor lock)."""
    spec_action = st.ACTIONS["rebuild"]
    inst = await db.get(conductor.store, uuid)
    if inst is None or inst["task_state"] != spec_action.task_state:
        return
    host = inst["host"] or ""
    vm_state, power_state = spec_action.landing(inst["vm_state"])
    event = await db.start_event(conductor.store, uuid, "compute_rebuild_instance", host or None)
    timeout = conductor.config.spawn_timeout
    capability = conductor.capabilities.grant(
        host, "GET", image_file_path(inst["image_ref"]), timeout
    )
    try:
        if not host:
            raise ValueError("the instance has no host")
        spec = await instance_spec(conductor.store, conductor.config, inst, capability)
        params = {
            "instance": spec,
            "power_on": power_state == st.RUNNING,
            "preserve_ephemeral": preserve_ephemeral,
        }
        info = await conductor.hub.call(host, "rebuild", params, timeout=timeout)
    except (ProtocolError, OSError, ValueError) as exc:
        reason = exc.message if isinstance(exc, ProtocolError) else str(exc)
        message = f"Rebuild of instance {uuid} failed on {host or 'no host'}: {reason}"
        log.warning("%s", message)
        await db.finish_event(conductor.store, event, False, message)
        await db.update(
            conductor.store,
            uuid,
            expect_task_state=spec_action.task_state,
            vm_state=st.ERROR,
            task_state=None,
            fault=db.fault(message),
        )
        return
    finally:
        conductor.capabilities.revoke(capability)
    await db.finish_event(conductor.store, event, True)
    info = info if isinstance(info, dict) else {}
    landed = await db.update(
        conductor.store,
        uuid,
        expect_task_state=spec_action.task_state,
        vm_state=vm_state,
        power_state=int(info.get("power_state", power_state)),
        task_state=None,
        fault=None,
        addresses=info.get("addresses") or inst["addresses"] or [],
        launched_at=now_iso(),
    )
    if landed:
        log.info("instance %s rebuilt from image %s", uuid, inst["image_ref"])
        conductor._network_changed(inst["project_id"], host)
