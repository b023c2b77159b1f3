"""Network documents: Neutron's full attribute set; the provider attributes only for admins."""

from __future__ import annotations

from typing import Any

ADMIN_ONLY = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")


def network(record: dict[str, Any], is_admin: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record["id"],
        "name": record["name"],
        "tenant_id": record["project_id"],
        "project_id": record["project_id"],
        "description": record["description"],
        "admin_state_up": record["admin_state_up"],
        "status": "ACTIVE",
        "subnets": list(record["subnets"]),
        "shared": record["shared"],
        "router:external": record["external"],
        "is_default": False,
        "mtu": record["mtu"],
        "port_security_enabled": False,  # no security groups yet: nothing filters traffic
        "availability_zone_hints": [],
        "availability_zones": ["nova"] if record["private"] else [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "l2_adjacency": True,
        "dns_domain": "",
        "qos_policy_id": None,
        "vlan_transparent": False,
        "tags": [],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "revision_number": 1,
    }
    if is_admin:
        view["provider:network_type"] = record["network_type"]
        view["provider:physical_network"] = None
        view["provider:segmentation_id"] = None
    return view


# Every attribute a list may filter or sort on (admins' view included).
ATTRIBUTES = tuple(
    network(
        {
            "id": "",
            "name": "",
            "project_id": "",
            "description": "",
            "admin_state_up": True,
            "subnets": [],
            "shared": False,
            "external": False,
            "mtu": 0,
            "private": False,
            "created_at": "",
            "updated_at": "",
            "network_type": None,
        },
        True,
    )
)
