"""Floating IP documents, Neutron's shape: `port_details` summarises the associated port."""

from __future__ import annotations

from typing import Any


def _stamp(value: str) -> str:
    """Neutron's timestamps: seconds, Z."""
    return value[:19] + "Z"


def port_details(port: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": port["name"],
        "network_id": port["network_id"],
        "mac_address": port["mac_address"],
        "admin_state_up": True,
        "status": port["status"],
        "device_id": port["device_id"],
        "device_owner": port["device_owner"],
    }


def floatingip(row: dict[str, Any], port: dict[str, Any] | None) -> dict[str, Any]:
    """One floating IP; `port` is the record of its port (None when not associated)."""
    associated = row["port_id"] is not None
    return {
        "id": row["id"],
        "floating_ip_address": row["floating_ip_address"],
        "floating_network_id": row["floating_network_id"],
        "router_id": None,
        "port_id": row["port_id"],
        "fixed_ip_address": row["fixed_ip_address"],
        "status": "ACTIVE" if associated else "DOWN",
        "project_id": row["project_id"],
        "tenant_id": row["project_id"],
        "description": row["description"],
        "qos_policy_id": None,
        "port_details": port_details(port) if associated and port is not None else None,
        "port_forwardings": [],
        "tags": [],
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


# Every attribute a list may filter or sort on.
ATTRIBUTES = tuple(
    floatingip(
        {
            "id": "",
            "floating_ip_address": "",
            "floating_network_id": "",
            "port_id": None,
            "fixed_ip_address": None,
            "project_id": "",
            "description": "",
            "created_at": "",
            "updated_at": "",
            "revision_number": 0,
        },
        None,
    )
)
