"""What the conductor sends an agent to build a guest (InstanceSpec as a dict)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mininova.config import ServeConfig
from mininova.store import Store, images

# The server to place as it is now (its image_ref the one to spawn) and its forced host, or
# None when it has gone away.
CurrentServer = Callable[[], Awaitable[tuple[dict[str, Any], str | None] | None]]


@dataclass(frozen=True)
class Placement:
    """How the conductor's schedule-and-spawn loop records one kind of placement."""

    from_task: str  # the task_state the server leaves for `spawning`
    schedule_event: str  # the action event of each scheduling attempt
    spawn_event: str | None  # a separate event for each spawn; None: the schedule event's
    failure: Callable[[str, Exception], str]  # the fault of a spawn that failed on a host


@dataclass(frozen=True)
class Spawned:
    """A server the loop spawned: as it was spawned, where, and the agent's answer."""

    inst: dict[str, Any]
    host: str
    info: dict[str, Any]


def image_file_path(image_id: str) -> str:
    return f"/image/v2/images/{image_id}/file"


async def instance_spec(
    store: Store, config: ServeConfig, inst: dict[str, Any], capability: str
) -> dict[str, Any]:
    """The `spawn` params for one instance: flavor, image download, keys, user data.

    `capability` lets the chosen host download exactly this image while the order runs.
    """
    image = await images.get(store, inst["image_ref"])
    if image is None or image["status"] != "active":
        raise ValueError(f"Image {inst['image_ref']} is not available.")
    flavor = inst["flavor"]
    public_keys = {inst["key_name"]: inst["key_data"]} if inst["key_name"] else {}
    return {
        "uuid": inst["uuid"],
        "name": inst["name"],
        "hostname": inst["hostname"],
        "domain_name": f"instance-{inst['id']:08x}",
        "project_id": inst["project_id"],
        "user_id": inst["user_id"],
        "flavor": {
            "id": flavor["id"],
            "name": flavor["name"],
            "vcpus": flavor["vcpus"],
            "ram_mb": flavor["ram"],
            "disk_gb": flavor["disk"],
            "ephemeral_gb": flavor.get("ephemeral", 0),
            "swap_mb": flavor.get("swap", 0),
            "extra_specs": flavor.get("extra_specs", {}),
        },
        "image": {
            "id": image["id"],
            "name": image["name"] or "",
            "disk_format": image["disk_format"],
            "size": image["size"] or 0,
            "checksum": image["checksum"] or "",
            "url": config.base_url + image_file_path(image["id"]),
            "capability": capability,
        },
        "mac_address": inst["mac_address"],
        "key_name": inst["key_name"],
        "public_keys": public_keys,
        "user_data": inst["user_data"],
        "metadata": inst["metadata"],
        "availability_zone": inst["availability_zone"] or "nova",
        "config_drive": True,
    }
