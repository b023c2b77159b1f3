"""Keystone v3 views: pure functions of rows (and the public URL builder) → response dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mininova.identity.service import DEFAULT_DOMAIN, TokenInfo
from mininova.timeutil import iso

PREFIX = "/identity"

Url = Callable[[str], str]  # path → absolute URL (Services.url)

# (type, name, path) of the catalog's services.
CATALOG_SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("network", "neutron", "/networking"),
)
INTERFACES = ("public", "internal", "admin")


def version(url: Url) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": url(PREFIX + "/v3/")}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def catalog(url: Url, region: str) -> list[dict[str, Any]]:
    entries = []
    for kind, name, path in CATALOG_SERVICES:
        endpoints = [
            {
                "id": f"{name}-{iface}",
                "interface": iface,
                "region": region,
                "region_id": region,
                "url": url(path),
            }
            for iface in INTERFACES
        ]
        entries.append(
            {"type": kind, "name": name, "id": f"{name}-service", "endpoints": endpoints}
        )
    return entries


def token(info: TokenInfo, catalog_entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The token document; `catalog_entries` None leaves the catalog out."""
    audit_ids = [info.audit_id]
    if info.parent_audit_id:
        audit_ids.append(info.parent_audit_id)  # a rescoped token: its chain's first one
    body: dict[str, Any] = {
        "methods": list(info.methods),
        "expires_at": iso(info.expires_at),
        "issued_at": iso(info.issued_at),
        "audit_ids": audit_ids,
        "user": {
            "id": info.user_id,
            "name": info.user_name,
            "domain": DEFAULT_DOMAIN,
            "password_expires_at": None,
        },
        "project": {"id": info.project_id, "name": info.project_name, "domain": DEFAULT_DOMAIN},
        "roles": [{"id": r["id"], "name": r["name"]} for r in info.roles],
        "is_domain": False,
    }
    if catalog_entries is not None:
        body["catalog"] = catalog_entries
    return {"token": body}


def collection_links(url: Url, name: str) -> dict[str, Any]:
    """A collection's links; `name` is its path under /v3 ("projects", "auth/projects")."""
    return {"self": url(f"{PREFIX}/v3/{name}"), "previous": None, "next": None}


def project_tags(url: Url, project_id: str, tags: list[str]) -> dict[str, Any]:
    """The body of GET and PUT /v3/projects/{id}/tags."""
    return {"tags": list(tags), "links": {"self": url(f"{PREFIX}/v3/projects/{project_id}/tags")}}


def project(url: Url, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "description": row["description"],
        "enabled": bool(row["enabled"]),
        "parent_id": row["domain_id"],
        "is_domain": False,
        "tags": list(row.get("tags") or []),
        "options": {},
        "links": {"self": url(f"{PREFIX}/v3/projects/{row['id']}")},
    }


def user(url: Url, row: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "enabled": bool(row["enabled"]),
        "password_expires_at": None,
        "options": {},
        "links": {"self": url(f"{PREFIX}/v3/users/{row['id']}")},
    }
    if row.get("default_project_id"):
        view["default_project_id"] = row["default_project_id"]
    if row.get("email"):
        view["email"] = row["email"]
    return view


def role(url: Url, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain_id": None,
        "description": None,
        "options": {},
        "links": {"self": url(f"{PREFIX}/v3/roles/{row['id']}")},
    }


def role_assignment(url: Url, row: dict[str, Any], *, names: bool) -> dict[str, Any]:
    """One assignment; with `names`, the user's, project's and role's names too."""
    user_ref: dict[str, Any] = {"id": row["user_id"]}
    project_ref: dict[str, Any] = {"id": row["project_id"]}
    role_ref: dict[str, Any] = {"id": row["role_id"]}
    if names:
        user_ref.update(name=row["user_name"], domain=DEFAULT_DOMAIN)
        project_ref.update(name=row["project_name"], domain=DEFAULT_DOMAIN)
        role_ref["name"] = row["role_name"]
    return {
        "user": user_ref,
        "scope": {"project": project_ref},
        "role": role_ref,
        "links": {
            "assignment": url(
                f"{PREFIX}/v3/projects/{row['project_id']}/users/{row['user_id']}"
                f"/roles/{row['role_id']}"
            )
        },
    }


def domain(url: Url) -> dict[str, Any]:
    """The single Default domain."""
    return {
        "id": "default",
        "name": "Default",
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": url(f"{PREFIX}/v3/domains/default")},
    }
