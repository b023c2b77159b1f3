"""Glance v2 views: pure functions of a decoded image record (no I/O, no request)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from mininova.image.store_ops import RESERVED
from mininova.timeutil import nova_time


def image(row: dict[str, Any]) -> dict[str, Any]:
    """Glance v2 image representation; extra properties become top-level keys."""
    image_id = row["id"]
    view: dict[str, Any] = {}
    for key, value in (row.get("properties") or {}).items():
        if key not in RESERVED:
            view[key] = value
    view.update(
        {
            "id": image_id,
            "name": row.get("name"),
            "status": row.get("status"),
            "disk_format": row.get("disk_format"),
            "container_format": row.get("container_format"),
            "visibility": row.get("visibility"),
            "size": row.get("size"),
            "virtual_size": row.get("virtual_size"),
            "checksum": row.get("checksum"),
            "os_hash_algo": row.get("os_hash_algo"),
            "os_hash_value": row.get("os_hash_value"),
            "owner": row.get("owner"),
            "min_disk": row.get("min_disk") or 0,
            "min_ram": row.get("min_ram") or 0,
            "protected": bool(row.get("protected")),
            "os_hidden": False,
            "tags": list(row.get("tags") or []),
            "created_at": nova_time(row.get("created_at")),
            "updated_at": nova_time(row.get("updated_at")),
            "self": f"/v2/images/{image_id}",
            "file": f"/v2/images/{image_id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    return view


def image_list(
    page: list[dict[str, Any]], params: list[tuple[str, str]], more: bool
) -> dict[str, Any]:
    """`GET /v2/images`: the page, `first` (the query without marker) and `next` links."""
    body: dict[str, Any] = {
        "images": [image(row) for row in page],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    if params:
        body["first"] = "/v2/images?" + urlencode(params)
    if more and page:
        body["next"] = "/v2/images?" + urlencode(params + [("marker", page[-1]["id"])])
    return body


def versions(href: str, supported: tuple[str, ...]) -> dict[str, Any]:
    """The versions document (newest first, the newest CURRENT)."""
    return {
        "versions": [
            {
                "id": f"v{v}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": href}],
            }
            for i, v in enumerate(supported)
        ]
    }
