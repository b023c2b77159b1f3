"""Request schemas and keys of /os-quota-class-sets/{class}, per microversion (as Nova).

Below 2.50 the class shows the network quotas but not the server group ones; 2.50 swaps
them; 2.57 drops the injected-file quotas. PUT takes every key of its version's view (below
2.50 also the server group keys and nova-network's `networks`, which are ignored).
"""

from __future__ import annotations

from typing import Any

from mininova.api.compute.schemas.quota_sets import INJECTED_QUOTAS, NETWORK_QUOTAS, resources
from mininova.api.microversions import V2_1, V2_50, V2_57, schema_for

GROUP_QUOTAS = ("server_group_members", "server_groups")

_LIMIT = {
    "type": ["integer", "string"],
    "pattern": r"^-?[0-9]+$",
    "minimum": -1,
    "maximum": 2147483647,
}


def _update(keys: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "quota_class_set": {
                "type": "object",
                "properties": {k: _LIMIT for k in keys},
                "additionalProperties": False,
            }
        },
        "required": ["quota_class_set"],
        "additionalProperties": False,
    }


_KEYS_21 = resources(GROUP_QUOTAS)
_KEYS_250 = resources(NETWORK_QUOTAS)
_KEYS_257 = resources(NETWORK_QUOTAS + INJECTED_QUOTAS)

# (since, until, quota_class_set keys shown, without `id`)
RESOURCES = [
    (V2_1, V2_50, _KEYS_21),
    (V2_50, V2_57, _KEYS_250),
    (V2_57, None, _KEYS_257),
]
UPDATE = [
    (V2_1, V2_50, _update(sorted([*_KEYS_21, *GROUP_QUOTAS, "networks"]))),
    (V2_50, V2_57, _update(_KEYS_250)),
    (V2_57, None, _update(_KEYS_257)),
]


def resources_for(version: Any) -> list[str]:
    """The quota_class_set keys of this microversion (without `id`)."""
    return schema_for(version, RESOURCES)


def update_for(version: Any) -> dict[str, Any]:
    """The PUT body schema of this microversion."""
    return schema_for(version, UPDATE)
