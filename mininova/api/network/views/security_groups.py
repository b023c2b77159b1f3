"""Security group and security group rule documents (Neutron's attribute sets)."""

from __future__ import annotations

from typing import Any

_EPOCH = "1970-01-01T00:00:00Z"


def _stamp(value: str | None) -> str:
    """Neutron's timestamps: seconds, Z."""
    return value[:19] + "Z" if value else _EPOCH


def rule(row: dict[str, Any], default_group_ids: set[str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tenant_id": row["project_id"],
        "project_id": row["project_id"],
        "security_group_id": row["security_group_id"],
        "direction": row["direction"],
        "ethertype": row["ethertype"],
        "protocol": row["protocol"],
        "port_range_min": row["port_range_min"],
        "port_range_max": row["port_range_max"],
        "remote_ip_prefix": row["remote_ip_prefix"],
        "normalized_cidr": row["remote_ip_prefix"],
        "remote_group_id": row["remote_group_id"],
        "remote_address_group_id": None,
        "belongs_to_default_sg": row["security_group_id"] in default_group_ids,
        "description": row["description"],
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "revision_number": 0,
    }


def group(
    row: dict[str, Any], rules: list[dict[str, Any]], default_group_ids: set[str]
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "tenant_id": row["project_id"],
        "project_id": row["project_id"],
        "description": row["description"],
        "stateful": bool(row["stateful"]),
        "shared": False,
        "is_default": bool(row["is_default"]),
        "security_group_rules": [rule(r, default_group_ids) for r in rules],
        "tags": [],
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "revision_number": row["revision_number"],
    }


_SAMPLE = {
    "id": "",
    "name": "",
    "project_id": "",
    "description": "",
    "stateful": 1,
    "is_default": 0,
    "revision_number": 0,
    "created_at": "",
    "updated_at": "",
}
_SAMPLE_RULE = {
    "id": "",
    "project_id": "",
    "security_group_id": "",
    "direction": "",
    "ethertype": "",
    "protocol": None,
    "port_range_min": None,
    "port_range_max": None,
    "remote_ip_prefix": None,
    "remote_group_id": None,
    "description": "",
    "created_at": "",
    "updated_at": "",
}
# Every attribute a list may filter or sort on.
GROUP_ATTRIBUTES = tuple(group(_SAMPLE, [], set()))
RULE_ATTRIBUTES = tuple(rule(_SAMPLE_RULE, set()))
