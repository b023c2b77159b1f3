"""Subnet documents (Neutron's full attribute set)."""

from __future__ import annotations

from typing import Any


def subnet(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "name": record["name"],
        "network_id": record["network_id"],
        "tenant_id": record["project_id"],
        "project_id": record["project_id"],
        "description": record["description"],
        "ip_version": record["ip_version"],
        "cidr": record["cidr"],
        "gateway_ip": record["gateway_ip"],
        "enable_dhcp": record["enable_dhcp"],
        "allocation_pools": [dict(pool) for pool in record["allocation_pools"]],
        "dns_nameservers": list(record["dns_nameservers"]),
        "host_routes": [dict(route) for route in record["host_routes"]],
        "ipv6_address_mode": None,
        "ipv6_ra_mode": None,
        "subnetpool_id": None,
        "segment_id": None,
        "service_types": [],
        "dns_publish_fixed_ip": False,
        "tags": [],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "revision_number": 1,
    }


ATTRIBUTES = tuple(
    subnet(
        {
            "id": "",
            "name": "",
            "network_id": "",
            "project_id": "",
            "description": "",
            "ip_version": 4,
            "cidr": "",
            "gateway_ip": None,
            "enable_dhcp": True,
            "allocation_pools": [],
            "dns_nameservers": [],
            "host_routes": [],
            "created_at": "",
            "updated_at": "",
        }
    )
)
