"""Request schema of the `rebuild` server action: 2.19 adds `description`, 2.54 `key_name`,
2.57 `user_data` (and drops `personality`), 2.90 `hostname`."""

from __future__ import annotations

from typing import Any

from mininova.api.compute.schemas.servers import METADATA, NAME
from mininova.api.microversions import V2_1, V2_19, V2_54, V2_57, V2_90, schema_for

_BOOLEAN: dict[str, Any] = {
    "type": ["boolean", "string"],
    "enum": [True, False, "true", "false", "True", "False", "1", "0", "yes", "no", "on", "off"],
}


def _rebuild(minor: int) -> dict[str, Any]:
    props: dict[str, Any] = {
        "imageRef": {"type": "string", "minLength": 1, "maxLength": 255},
        "name": NAME,
        "adminPass": {"type": "string"},
        "metadata": METADATA,
        "preserve_ephemeral": _BOOLEAN,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": ["string", "null"]},
        "accessIPv6": {"type": ["string", "null"]},
    }
    if minor < 57:
        props["personality"] = {"type": "array"}
    if minor >= 19:
        props["description"] = {"type": ["string", "null"], "maxLength": 255}
    if minor >= 54:
        props["key_name"] = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
    if minor >= 57:
        props["user_data"] = {"type": ["string", "null"], "maxLength": 65535}
    if minor >= 90:
        props["hostname"] = {"type": "string", "minLength": 1, "maxLength": 255}
    return {
        "type": "object",
        "properties": {
            "rebuild": {
                "type": "object",
                "properties": props,
                "required": ["imageRef"],
                "additionalProperties": False,
            }
        },
        "required": ["rebuild"],
        "additionalProperties": False,
    }


REBUILD = [
    (V2_1, V2_19, _rebuild(1)),
    (V2_19, V2_54, _rebuild(19)),
    (V2_54, V2_57, _rebuild(54)),
    (V2_57, V2_90, _rebuild(57)),
    (V2_90, None, _rebuild(90)),
]


def rebuild(version: tuple[int, int]) -> dict[str, Any]:
    """The rebuild action's schema for the request's microversion."""
    return schema_for(version, REBUILD)
