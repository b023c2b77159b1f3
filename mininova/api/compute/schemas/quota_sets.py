"""Request schemas of PUT /os-quota-sets/{project_id}: the quota keys of each microversion."""

from __future__ import annotations

from typing import Any

from mininova import quota
from mininova.api.microversions import V2_1, V2_36, V2_57, schema_for

NETWORK_QUOTAS = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTED_QUOTAS = ("injected_file_content_bytes", "injected_file_path_bytes", "injected_files")

_LIMIT = {
    "type": ["integer", "string"],
    "pattern": r"^-?[0-9]+$",
    "minimum": -1,
    "maximum": 2147483647,
}


def resources(dropped: tuple[str, ...]) -> list[str]:
    return [k for k in sorted(quota.DEFAULTS) if k not in dropped]


def _update(keys: list[str]) -> dict[str, Any]:
    props: dict[str, Any] = {k: _LIMIT for k in keys}
    props["force"] = {"type": ["boolean", "string"]}
    return {
        "type": "object",
        "properties": {
            "quota_set": {"type": "object", "properties": props, "additionalProperties": False}
        },
        "required": ["quota_set"],
        "additionalProperties": False,
    }


_KEYS_21 = resources(())
_KEYS_236 = resources(NETWORK_QUOTAS)
_KEYS_257 = resources(NETWORK_QUOTAS + INJECTED_QUOTAS)

# (since, until, quota_set keys without `id`)
RESOURCES = [
    (V2_1, V2_36, _KEYS_21),
    (V2_36, V2_57, _KEYS_236),
    (V2_57, None, _KEYS_257),
]
UPDATE = [
    (V2_1, V2_36, _update(_KEYS_21)),
    (V2_36, V2_57, _update(_KEYS_236)),
    (V2_57, None, _update(_KEYS_257)),
]


def resources_for(version: Any) -> list[str]:
    """The quota_set keys of this microversion (without `id`)."""
    return schema_for(version, RESOURCES)


def update_for(version: Any) -> dict[str, Any]:
    """The PUT body schema of this microversion."""
    return schema_for(version, UPDATE)
