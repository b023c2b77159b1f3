"""POST /v2.0/networks. Unknown attributes are refused by the handler with Neutron's message."""

from __future__ import annotations

ATTRIBUTES = (
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "is_default",
    "port_security_enabled",
    "availability_zone_hints",
    "project_id",
    "tenant_id",
    "dns_domain",
    "tags",
)

CREATE = {
    "type": "object",
    "required": ["network"],
    "properties": {
        "network": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 255},
                "description": {"type": "string", "maxLength": 255},
                "admin_state_up": {"type": "boolean"},
                "shared": {"type": "boolean"},
                "router:external": {"type": "boolean"},
                "mtu": {"type": "integer", "minimum": 68, "maximum": 9000},
                "is_default": {"type": "boolean", "enum": [False]},
                "port_security_enabled": {"type": "boolean"},
                "availability_zone_hints": {"type": "array", "maxItems": 0},
                "project_id": {"type": "string", "maxLength": 255},
                "tenant_id": {"type": "string", "maxLength": 255},
                "dns_domain": {"type": "string", "maxLength": 0},
                "tags": {"type": "array", "maxItems": 0},
            },
        }
    },
}
