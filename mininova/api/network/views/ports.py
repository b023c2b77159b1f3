"""Port documents (one per server NIC); the `binding:` host details only for admins."""

from __future__ import annotations

from typing import Any

ADMIN_ONLY = ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")


def port(record: dict[str, Any], is_admin: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record["id"],
        "name": record["name"],
        "network_id": record["network_id"],
        "tenant_id": record["project_id"],
        "project_id": record["project_id"],
        "description": "",
        "admin_state_up": True,
        "status": record["status"],
        "mac_address": record["mac_address"],
        "fixed_ips": [dict(ip) for ip in record["fixed_ips"]],
        "device_id": record["device_id"],
        "device_owner": record["device_owner"],
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "security_groups": record["security_groups"],
        "port_security_enabled": True,
        "binding:vnic_type": "normal",
        "dns_name": "",
        "dns_assignment": [],
        "ip_allocation": "immediate",
        "propagate_uplink_status": False,
        "qos_policy_id": None,
        "qos_network_policy_id": None,
        "resource_request": None,
        "tags": [],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "revision_number": 1,
    }
    if is_admin:
        view["binding:host_id"] = record["host"]
        view["binding:profile"] = {}
        view["binding:vif_type"] = "bridge" if record["host"] else "unbound"
        view["binding:vif_details"] = {}
    return view


ATTRIBUTES = tuple(
    port(
        {
            "id": "",
            "name": "",
            "network_id": "",
            "project_id": "",
            "status": "",
            "mac_address": "",
            "fixed_ips": [],
            "device_id": "",
            "device_owner": "",
            "host": "",
            "security_groups": [],
            "created_at": "",
            "updated_at": "",
        },
        True,
    )
)
