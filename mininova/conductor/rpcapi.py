"""`ConductorAPI`: the typed bus client of the conductor.

The API casts builds, actions, snapshots and deletes; the agent hub casts what agents report
(it only sees the `ConductorReports` protocol it declares, so it never imports the conductor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mininova.bus import Bus

SERVICE = "conductor"


class ConductorAPI:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    # ---- from the API ---------------------------------------------------------------------

    def build_instances(self, uuids: list[str]) -> None:
        self.bus.cast(SERVICE, "build_instances", uuids=uuids)

    def run_action(self, uuid: str, action: str) -> None:
        self.bus.cast(SERVICE, "run_action", uuid=uuid, action=action)

    def snapshot_instance(self, uuid: str, image_id: str) -> None:
        self.bus.cast(SERVICE, "snapshot_instance", uuid=uuid, image_id=image_id)

    def shelve_instance(self, uuid: str, image_id: str) -> None:
        self.bus.cast(SERVICE, "shelve_instance", uuid=uuid, image_id=image_id)

    def shelve_offload_instance(self, uuid: str) -> None:
        self.bus.cast(SERVICE, "shelve_offload_instance", uuid=uuid)

    def unshelve_instance(self, uuid: str, host: str | None = None) -> None:
        self.bus.cast(SERVICE, "unshelve_instance", uuid=uuid, host=host)

    def rebuild_instance(self, uuid: str, preserve_ephemeral: bool = False) -> None:
        self.bus.cast(SERVICE, "rebuild_instance", uuid=uuid, preserve_ephemeral=preserve_ephemeral)

    def resize_instance(self, uuid: str, migration_uuid: str, host: str | None = None) -> None:
        """Resize or cold-migrate (mininova/conductor/resize.py); `host`: the admin's target."""
        self.bus.cast(
            SERVICE, "resize_instance", uuid=uuid, migration_uuid=migration_uuid, host=host
        )

    def confirm_resize(self, uuid: str, migration_uuid: str) -> None:
        self.bus.cast(SERVICE, "confirm_resize", uuid=uuid, migration_uuid=migration_uuid)

    def revert_resize(self, uuid: str, migration_uuid: str) -> None:
        self.bus.cast(SERVICE, "revert_resize", uuid=uuid, migration_uuid=migration_uuid)

    def delete_instance(self, uuid: str) -> None:
        self.bus.cast(SERVICE, "delete_instance", uuid=uuid)

    def soft_delete_instance(self, uuid: str) -> None:
        self.bus.cast(SERVICE, "soft_delete_instance", uuid=uuid)

    def restore_instance(self, uuid: str) -> None:
        self.bus.cast(SERVICE, "restore_instance", uuid=uuid)

    async def reclaim_instances(self, timeout: float = 600) -> list[str]:
        """Run the soft-delete reaper once now; the uuids it deleted."""
        return await self.bus.call(SERVICE, "reclaim_instances", timeout=timeout)

    def sync_network(
        self, hosts: list[str], projects: Iterable[str] = (), instances: Iterable[str] = ()
    ) -> None:
        """Push the security-group and floating-IP state of `hosts` to their agents, and to
        the hosts enforcing a group of `projects` what changed in its members; `instances`:
        what changed on `hosts` concerns only these instances."""
        self.bus.cast(
            SERVICE,
            "sync_network",
            hosts=sorted({h for h in hosts if h}),
            projects=sorted({p for p in projects if p}),
            instances=sorted(set(instances)),
        )

    async def console_output(self, uuid: str, length: int | None, timeout: float = 40) -> str:
        return await self.bus.call(
            SERVICE, "console_output", uuid=uuid, length=length, timeout=timeout
        )

    # ---- from the agent hub (agenthub.ConductorReports) ------------------------------------

    def host_connected(self, host: str, guests: list[Any], destroy_orphans: bool) -> None:
        self.bus.cast(
            SERVICE, "host_connected", host=host, guests=guests, destroy_orphans=destroy_orphans
        )

    def sync_power_states(self, host: str, guests: list[Any]) -> None:
        self.bus.cast(SERVICE, "sync_power_states", host=host, guests=guests)

    def instance_event(self, host: str, uuid: str, power_state: int) -> None:
        self.bus.cast(SERVICE, "instance_event", host=host, uuid=uuid, power_state=power_state)
