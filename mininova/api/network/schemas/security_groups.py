"""POST/PUT /v2.0/security-groups and POST /v2.0/security-group-rules. Unknown attributes
are refused by the handler; rule values are checked by `mininova.network.security_groups`."""

from __future__ import annotations

GROUP_ATTRIBUTES = ("name", "description", "stateful", "project_id", "tenant_id", "tags")
GROUP_UPDATE_ATTRIBUTES = ("name", "description")
RULE_ATTRIBUTES = (
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
)

_NAME = {"type": "string", "maxLength": 255}

CREATE_GROUP = {
    "type": "object",
    "required": ["security_group"],
    "properties": {
        "security_group": {
            "type": "object",
            "properties": {
                "name": _NAME,
                "description": _NAME,
                "stateful": {"type": "boolean"},
                "project_id": _NAME,
                "tenant_id": _NAME,
                "tags": {"type": "array", "maxItems": 0},
            },
        }
    },
}

UPDATE_GROUP = {
    "type": "object",
    "required": ["security_group"],
    "properties": {
        "security_group": {
            "type": "object",
            "properties": {"name": _NAME, "description": _NAME},
        }
    },
}

_PORT = {"type": ["integer", "string", "null"]}

CREATE_RULE = {
    "type": "object",
    "required": ["security_group_rule"],
    "properties": {
        "security_group_rule": {
            "type": "object",
            "required": ["security_group_id", "direction"],
            "properties": {
                "security_group_id": {"type": "string"},
                "direction": {"type": "string"},
                "ethertype": {"type": ["string", "null"]},
                "protocol": {"type": ["string", "integer", "null"]},
                "port_range_min": _PORT,
                "port_range_max": _PORT,
                "remote_ip_prefix": {"type": ["string", "null"]},
                "remote_group_id": {"type": ["string", "null"]},
                "remote_address_group_id": {"type": "null"},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "project_id": _NAME,
                "tenant_id": _NAME,
            },
        }
    },
}
