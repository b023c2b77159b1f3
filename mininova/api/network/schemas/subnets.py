"""POST /v2.0/subnets. CIDR, gateway and pools are checked by the handler (Neutron's messages)."""

from __future__ import annotations

ATTRIBUTES = (
    "name",
    "description",
    "network_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "enable_dhcp",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "project_id",
    "tenant_id",
    "subnetpool_id",
    "ipv6_address_mode",
    "ipv6_ra_mode",
    "tags",
)

_POOL = {
    "type": "object",
    "required": ["start", "end"],
    "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
    "additionalProperties": False,
}
_ROUTE = {
    "type": "object",
    "required": ["destination", "nexthop"],
    "properties": {"destination": {"type": "string"}, "nexthop": {"type": "string"}},
    "additionalProperties": False,
}

CREATE = {
    "type": "object",
    "required": ["subnet"],
    "properties": {
        "subnet": {
            "type": "object",
            "required": ["network_id", "cidr"],
            "properties": {
                "name": {"type": "string", "maxLength": 255},
                "description": {"type": "string", "maxLength": 255},
                "network_id": {"type": "string"},
                "ip_version": {"type": ["integer", "string"], "enum": [4, 6, "4", "6"]},
                "cidr": {"type": "string"},
                "gateway_ip": {"type": ["string", "null"]},
                "enable_dhcp": {"type": "boolean"},
                "allocation_pools": {"type": "array", "items": _POOL},
                "dns_nameservers": {"type": "array", "items": {"type": "string"}},
                "host_routes": {"type": "array", "items": _ROUTE},
                "project_id": {"type": "string", "maxLength": 255},
                "tenant_id": {"type": "string", "maxLength": 255},
                "subnetpool_id": {"type": "null"},
                "ipv6_address_mode": {"type": "null"},
                "ipv6_ra_mode": {"type": "null"},
                "tags": {"type": "array", "maxItems": 0},
            },
        }
    },
}
