"""Request schemas of /servers: create, update, metadata and the server actions."""

from __future__ import annotations

from typing import Any

NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^(?![\s\u00a0])(?!.*[\s\u00a0]$).*$",
}
# No item count here: over the metadata_items quota is Nova's 403, checked with the quota.
METADATA: dict[str, Any] = {
    "type": "object",
    "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}

CREATE: dict[str, Any] = {
    "type": "object",
    "required": ["server"],
    "properties": {
        "server": {
            "type": "object",
            "required": ["name", "flavorRef"],
            "properties": {
                "name": NAME,
                "imageRef": {"type": "string"},
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "key_name": {"type": ["string", "null"]},
                "metadata": METADATA,
                "min_count": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
                "max_count": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
                "return_reservation_id": {"type": ["boolean", "string"]},
                "networks": {
                    "oneOf": [
                        {"type": "string", "enum": ["auto", "none"]},
                        {"type": "array", "items": {"type": "object"}},
                    ]
                },
                "accessIPv4": {"type": ["string", "null"]},
                "accessIPv6": {"type": ["string", "null"]},
                "adminPass": {"type": "string"},
                "user_data": {"type": ["string", "null"], "maxLength": 65535},
                "availability_zone": {"type": ["string", "null"], "maxLength": 255},
                "config_drive": {"type": ["boolean", "string", "null"]},
                "block_device_mapping_v2": {"type": "array", "items": {"type": "object"}},
                "security_groups": {"type": "array", "items": {"type": "object"}},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "tags": {"type": "array", "items": {"type": "string"}},
                "hostname": {"type": "string", "maxLength": 255},
                "personality": {"type": "array"},
                "trusted_image_certificates": {"type": ["array", "null"]},
                "host": {"type": "string"},
                "hypervisor_hostname": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "os:scheduler_hints": {"type": "object"},
        "OS-SCH-HNT:scheduler_hints": {"type": "object"},
    },
    "additionalProperties": False,
}
# From 2.57 `personality` is refused (checked on the `server` object).
NO_PERSONALITY: dict[str, Any] = {"properties": {"personality": {"not": {}}}}

UPDATE: dict[str, Any] = {
    "type": "object",
    "required": ["server"],
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": NAME,
                "accessIPv4": {"type": ["string", "null"]},
                "accessIPv6": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "hostname": {"type": "string", "maxLength": 255},
                "OS-DCF:diskConfig": {"type": "string"},
            },
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}

METADATA_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["metadata"],
    "properties": {"metadata": METADATA},
}
METADATA_ITEM_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["meta"],
    "properties": {"meta": {**METADATA, "minProperties": 1, "maxProperties": 1}},
}

# ---- POST /servers/{id}/action

REBOOT: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}
    },
    "additionalProperties": False,
}
RESET_STATE: dict[str, Any] = {
    "type": "object",
    "required": ["state"],
    "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
    "additionalProperties": False,
}
CONSOLE_OUTPUT: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {"length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"}},
}
CREATE_IMAGE: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "metadata": {
            "type": "object",
            "additionalProperties": {"type": "string", "maxLength": 255},
        },
    },
    "additionalProperties": False,
}
