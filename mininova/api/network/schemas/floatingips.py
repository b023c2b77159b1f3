"""POST and PUT /v2.0/floatingips. Addresses, networks and ports are checked by the handler."""

from __future__ import annotations

ATTRIBUTES = (
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
    "qos_policy_id",
    "dns_domain",
    "dns_name",
    "tags",
)
UPDATE_ATTRIBUTES = ("port_id", "fixed_ip_address", "description", "qos_policy_id")

_ID = {"type": "string", "maxLength": 255}
_OPTIONAL_ID = {"type": ["string", "null"], "maxLength": 255}

CREATE = {
    "type": "object",
    "required": ["floatingip"],
    "properties": {
        "floatingip": {
            "type": "object",
            "required": ["floating_network_id"],
            "properties": {
                "floating_network_id": _ID,
                "floating_ip_address": _OPTIONAL_ID,
                "subnet_id": _OPTIONAL_ID,
                "port_id": _OPTIONAL_ID,
                "fixed_ip_address": _OPTIONAL_ID,
                "description": {"type": "string", "maxLength": 255},
                "project_id": _ID,
                "tenant_id": _ID,
                "qos_policy_id": {"type": "null"},
                "dns_domain": {"type": "string", "maxLength": 0},
                "dns_name": {"type": "string", "maxLength": 0},
                "tags": {"type": "array", "maxItems": 0},
            },
        }
    },
}

UPDATE = {
    "type": "object",
    "required": ["floatingip"],
    "properties": {
        "floatingip": {
            "type": "object",
            "properties": {
                "port_id": _OPTIONAL_ID,
                "fixed_ip_address": _OPTIONAL_ID,
                "description": {"type": "string", "maxLength": 255},
                "qos_policy_id": {"type": "null"},
            },
        }
    },
}
