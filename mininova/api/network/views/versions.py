"""Neutron's version documents: GET /networking (the versions) and /networking/v2.0 (resources)."""

from __future__ import annotations

from typing import Any

RESOURCES = (
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("floatingip", "floatingips"),
    ("quota", "quotas"),
)


def versions(v2_url: str) -> dict[str, Any]:
    return {
        "versions": [
            {"id": "v2.0", "status": "CURRENT", "links": [{"href": v2_url, "rel": "self"}]}
        ]
    }


def resources(v2_url: str) -> dict[str, Any]:
    base = v2_url.rstrip("/")
    return {
        "resources": [
            {
                "name": name,
                "collection": collection,
                "links": [{"href": f"{base}/{collection}", "rel": "self"}],
            }
            for name, collection in RESOURCES
        ]
    }
