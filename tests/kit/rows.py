"""Rows for store-level tests: an instance with just the columns a repository needs."""

from __future__ import annotations

from mininova.store import Store, instances


async def add_instance(
    store: Store,
    uuid: str,
    *,
    vm_state: str = "active",
    host: str | None = "node1",
    deleted: int = 0,
    name: str = "vm",
) -> None:
    await instances.create(
        store,
        {
            "uuid": uuid,
            "name": name,
            "hostname": name,
            "project_id": "p",
            "user_id": "u",
            "image_ref": "img",
            "flavor_id": "1",
            "flavor": {},
            "vm_state": vm_state,
            "host": host,
            "mac_address": "fa:16:3e:00:00:01",
            "reservation_id": "r-1",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "deleted": deleted,
        },
    )
