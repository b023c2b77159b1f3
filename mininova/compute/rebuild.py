"""Rebuild (like nova.compute.api.API.rebuild): a fresh root disk from an image, same host.

The API-side half: check the server (lock, state), the image (visible, active, fits the
server's flavor) and the key pair; then ONE transaction sets the task state `rebuilding`,
records the `rebuild` instance action and writes the new image, name, metadata, key, user data,
description and hostname to the instance row (as Nova does before it casts); then the cast.
The conductor (`mininova.conductor.rebuild`) orders the server's agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova.compute.api import (
    Caller,
    check_image_fits,
    may_start,
    sanitize_hostname,
    start_task,
    usable_image,
)
from mininova.errors import Conflict, Invalid
from mininova.store import keypairs

if TYPE_CHECKING:
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.store import Store
    from mininova.store.engine import Row

_UNSET: Any = object()


@dataclass
class RebuildRequest:
    """A parsed rebuild action (shapes already checked by the API's schema).

    Fields left `UNSET` keep the server's current value; `key_name`/`user_data` None clear it.
    """

    image_ref: str
    name: Any = _UNSET
    metadata: Any = _UNSET
    access_ip_v4: Any = _UNSET
    access_ip_v6: Any = _UNSET
    description: Any = _UNSET
    key_name: Any = _UNSET
    user_data: Any = _UNSET
    hostname: Any = _UNSET
    preserve_ephemeral: bool = False


UNSET = _UNSET


async def _rebuild_image(db: Any, caller: Caller, image_ref: str, flavor: dict[str, Any]) -> Row:
    image = await usable_image(db, caller, image_ref, not_found="Cannot find image for rebuild")
    check_image_fits(flavor, image, caller)
    return image


async def rebuild_server(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, req: RebuildRequest
) -> None:
    """Start rebuilding `inst` from `req.image_ref` (409 locked or busy, 400 bad image/key)."""
    may_start(caller, inst, st.check_action, "rebuild")
    if not inst["host"]:
        raise Conflict(f"Instance {inst['uuid']} has no host to be rebuilt on.")
    await _rebuild_image(store, caller, req.image_ref, inst["flavor"] or {})
    changes: dict[str, Any] = {"image_ref": req.image_ref, "task_state": st.REBUILDING}
    if req.key_name is not UNSET:
        if req.key_name is None:
            changes.update(key_name=None, key_data=None)
        else:
            key = await keypairs.get(store, caller.user_id, req.key_name)
            if key is None:
                raise Invalid(f"Keypair {req.key_name} not found for user {caller.user_id}")
            changes.update(key_name=req.key_name, key_data=key["public_key"])
    simple = {
        "name": req.name,
        "metadata": req.metadata,
        "access_ip_v4": req.access_ip_v4,
        "access_ip_v6": req.access_ip_v6,
        "description": req.description,
        "user_data": req.user_data,
    }
    changes.update({k: v for k, v in simple.items() if v is not UNSET})
    if req.hostname is not UNSET:
        changes["hostname"] = sanitize_hostname(req.hostname)
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, "rebuild", **changes)
    conductor.rebuild_instance(inst["uuid"], req.preserve_ephemeral)
