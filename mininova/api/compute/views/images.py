"""Compute image proxy views (Nova's image representation of a Glance record)."""

from __future__ import annotations

from typing import Any

from mininova.timeutil import nova_time

_STATUS = {
    "active": "ACTIVE",
    "queued": "SAVING",
    "saving": "SAVING",
    "killed": "ERROR",
    "deleted": "DELETED",
    "pending_delete": "DELETED",
}
_PROGRESS = {"queued": 25, "saving": 50, "active": 100}


def nova_status(glance_status: str | None) -> str:
    return _STATUS.get(glance_status or "", "UNKNOWN")


def links(base_url: str, prefix: str, image_id: str) -> list[dict[str, str]]:
    bookmark_prefix = prefix.rsplit("/", 1)[0]  # /compute
    return [
        {"rel": "self", "href": f"{base_url}{prefix}/images/{image_id}"},
        {"rel": "bookmark", "href": f"{base_url}{bookmark_prefix}/images/{image_id}"},
        {
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": f"{base_url}/image/images/{image_id}",
        },
    ]


def brief(row: dict[str, Any], base_url: str, prefix: str) -> dict[str, Any]:
    return {"id": row["id"], "name": row.get("name"), "links": links(base_url, prefix, row["id"])}


def detail(row: dict[str, Any], base_url: str, prefix: str) -> dict[str, Any]:
    status = row.get("status")
    view: dict[str, Any] = {
        "id": row["id"],
        "name": row.get("name"),
        "minRam": row.get("min_ram") or 0,
        "minDisk": row.get("min_disk") or 0,
        "metadata": dict(row.get("properties") or {}),
        "created": nova_time(row.get("created_at")),
        "updated": nova_time(row.get("updated_at")),
        "status": nova_status(status),
        "progress": _PROGRESS.get(status or "", 0),
        "links": links(base_url, prefix, row["id"]),
        "OS-EXT-IMG-SIZE:size": row.get("size"),
    }
    server = view["metadata"].get("instance_uuid")
    if server:
        view["server"] = {
            "id": server,
            "links": [
                {"rel": "self", "href": f"{base_url}{prefix}/servers/{server}"},
                {
                    "rel": "bookmark",
                    "href": f"{base_url}{prefix.rsplit('/', 1)[0]}/servers/{server}",
                },
            ],
        }
    return view


def image_list(
    rows: list[dict[str, Any]], base_url: str, prefix: str, detailed: bool, next_href: str | None
) -> dict[str, Any]:
    view = detail if detailed else brief
    body: dict[str, Any] = {"images": [view(row, base_url, prefix) for row in rows]}
    if next_href:
        body["images_links"] = [{"rel": "next", "href": next_href}]
    return body
