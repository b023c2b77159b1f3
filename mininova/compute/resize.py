"""Resize, cold migration, confirm and revert on the API side (like nova.compute.api).

`resize` and `migrate` check the request and the state, then in ONE transaction under the
project's quota lock check the upsize against the quota, set task_state `resize_prep`, count
the larger of the two flavors in the instance's quota columns until confirm/revert, keep the
old vm_state in system_metadata, insert the `migrations` row and the instance action; then cast
to the conductor (mininova/conductor/resize.py), which schedules, claims and moves the guest.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova import quota
from mininova.compute.api import (
    Caller,
    check_image_fits,
    flavor_document,
    may_start,
    start_task,
)
from mininova.errors import Conflict, Invalid, PermissionDenied, QuotaExceeded
from mininova.hosts import is_up
from mininova.store import flavors, hosts, images, migrations, quotas
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.config import ServeConfig
    from mininova.store import Store
    from mininova.store.engine import Executor, Row


async def _check_upsize_quota(db: Executor, project_id: str, old: dict, new: dict) -> None:
    """Nova's resize quota check: the growth of cores and RAM must fit the project's quota."""
    deltas = {
        "cores": int(new["vcpus"]) - int(old["vcpus"]),
        "ram": int(new["ram"]) - int(old["ram"]),
    }
    deltas = {k: v for k, v in deltas.items() if v > 0}
    if not deltas:
        return
    limits = await quota.get_limits(db, project_id)
    usage = await quotas.instance_usage(db, project_id)
    overs = sorted(r for r, d in deltas.items() if limits[r] >= 0 and usage[r] + d > limits[r])
    if overs:
        names = ", ".join(overs)
        raise QuotaExceeded(
            f"Quota exceeded for {names}: Requested "
            + ", ".join(str(deltas[r]) for r in overs)
            + ", but already used "
            + ", ".join(str(usage[r]) for r in overs)
            + " of "
            + ", ".join(str(limits[r]) for r in overs)
            + f" {names}"
        )


async def _start_move(
    store: Store,
    conductor: ConductorAPI,
    caller: Caller,
    inst: Row,
    action: str,
    new_flavor: dict[str, Any],
    host: str | None,
) -> str:
    spec = may_start(caller, inst, st.check_move, action)
    if not inst["host"]:
        raise Conflict(f"Instance {inst['uuid']} has no host to move from.")
    old_flavor = inst["flavor"]
    migration_uuid = str(uuidlib.uuid4())
    now = now_iso()
    async with store.transaction() as tx:
        await tx.lock(f"quota:{inst['project_id']}")
        await _check_upsize_quota(tx, inst["project_id"], old_flavor, new_flavor)
        system_metadata = {**inst["system_metadata"], "old_vm_state": inst["vm_state"]}
        await start_task(
            tx,
            caller,
            inst,
            action,
            task_state=spec.task_state,
            vcpus=max(int(old_flavor["vcpus"]), int(new_flavor["vcpus"])),
            memory_mb=max(int(old_flavor["ram"]), int(new_flavor["ram"])),
            system_metadata=system_metadata,
        )
        await migrations.create(
            tx,
            {
                "uuid": migration_uuid,
                "instance_uuid": inst["uuid"],
                "project_id": inst["project_id"],
                "user_id": inst["user_id"],
                "migration_type": "resize" if action == "resize" else "migration",
                "source_compute": inst["host"],
                "dest_compute": None,
                "old_flavor": old_flavor,
                "new_flavor": new_flavor,
                "status": "pre-migrating",
                "created_at": now,
                "updated_at": now,
            },
        )
    conductor.resize_instance(inst["uuid"], migration_uuid, host)
    return migration_uuid


async def resize(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, flavor_ref: str
) -> str:
    """Start resizing a server to another flavor; the migration's uuid."""
    flavor = await flavors.accessible(
        store, flavor_ref, caller.project_id, is_admin=caller.is_admin
    )
    if flavor is None:
        raise Invalid(f"Flavor {flavor_ref} could not be found.")
    if flavor["disabled"]:
        raise Invalid(f"Flavor {flavor_ref} is disabled.")
    old = inst["flavor"]
    if str(flavor["id"]) == str(old.get("id")):
        raise Invalid("When resizing, instances must change flavor!")
    if int(flavor["disk"]) < int(old.get("disk") or 0):
        raise Invalid("Unable to resize disk down.")
    image = await images.get(store, inst["image_ref"]) if inst["image_ref"] else None
    if image is not None:  # Nova checks the new flavor against the server's image too
        check_image_fits(flavor, image, caller)
    new = flavor_document(flavor, await flavors.extra_specs(store, flavor["id"]))
    return await _start_move(store, conductor, caller, inst, "resize", new, None)


async def migrate(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, host: str | None
) -> str:
    """Cold-migrate a server (admin) to another host, `host` if named; the migration's uuid."""
    if not caller.is_admin:
        raise PermissionDenied(
            "Policy doesn't allow os_compute_api:os-migrate-server:migrate to be performed."
        )
    if host is not None:
        if await hosts.get_node(store, host) is None:
            raise Invalid(f"Compute host {host} could not be found.")
        if host == inst["host"]:
            raise Invalid(f"Unable to migrate instance ({inst['uuid']}) to current host ({host}).")
    return await _start_move(store, conductor, caller, inst, "migrate", dict(inst["flavor"]), host)


async def _finished_migration(db: Executor, inst: Row) -> Row:
    migration = await migrations.latest_of_instance(db, inst["uuid"])
    if migration is None or migration["status"] != "finished":
        raise Invalid(f"Instance {inst['uuid']} has not been resized.")
    return migration


async def confirm_resize(store: Store, conductor: ConductorAPI, caller: Caller, inst: Row) -> None:
    await _end_move(store, conductor, caller, inst, "confirmResize", None)


async def revert_resize(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, config: ServeConfig
) -> None:
    await _end_move(store, conductor, caller, inst, "revertResize", config)


async def _end_move(
    store: Store,
    conductor: ConductorAPI,
    caller: Caller,
    inst: Row,
    action: str,
    config: ServeConfig | None,
) -> None:
    spec = may_start(caller, inst, st.check_move, action)
    migration = await _finished_migration(store, inst)
    if config is not None:  # revert: the guest goes back to the source host, which must be up
        source = migration["source_compute"]
        node = await hosts.get_node(store, source)
        if node is None or not is_up(node, config):
            raise Conflict(
                f"Cannot 'revertResize' instance {inst['uuid']}: its source host {source} "
                "is not up, so the old guest cannot be restored there."
            )
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, action, task_state=spec.task_state)
        await migrations.set_status(
            tx,
            migration["uuid"],
            "confirming" if action == "confirmResize" else "reverting",
            now_iso(),
        )
    if action == "confirmResize":
        conductor.confirm_resize(inst["uuid"], migration["uuid"])
    else:
        conductor.revert_resize(inst["uuid"], migration["uuid"])


# ---------------------------------------------------------------------------- reads


async def list_migrations(
    db: Executor, caller: Caller, *, instance_uuid: str | None = None
) -> list[Row]:
    """os-migrations (admin): every migration, newest first, or one server's."""
    if not caller.is_admin:
        raise PermissionDenied(
            "Policy doesn't allow os_compute_api:os-migrations:index to be performed."
        )
    if instance_uuid is not None:
        return await migrations.of_instance(db, instance_uuid)
    return await migrations.list_all(db)
