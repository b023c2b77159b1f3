"""Flavor views, per Nova's microversions: `description` from 2.55, `extra_specs` embedded
from 2.61, `swap` is "" when 0 below 2.75 and 0 from 2.75."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mininova.api.microversions import V2_55, V2_61, V2_75, Field, render_fields


@dataclass(frozen=True)
class FlavorView:
    row: dict[str, Any]
    links: list[dict[str, str]]
    extra_specs: dict[str, str] | None = None


# The flavor views, in response order: list items and the detailed view.
BRIEF_FIELDS: tuple[Field[FlavorView], ...] = (
    Field("id", lambda f: f.row["id"]),
    Field("name", lambda f: f.row["name"]),
    Field("links", lambda f: f.links),
    Field("description", lambda f: f.row.get("description"), since=V2_55),
)
DETAIL_FIELDS: tuple[Field[FlavorView], ...] = (
    Field("id", lambda f: f.row["id"]),
    Field("name", lambda f: f.row["name"]),
    Field("ram", lambda f: int(f.row["ram"])),
    Field("disk", lambda f: int(f.row["disk"])),
    Field("vcpus", lambda f: int(f.row["vcpus"])),
    Field("swap", lambda f: int(f.row["swap"]) or "", until=V2_75),
    Field("swap", lambda f: int(f.row["swap"]), since=V2_75),
    Field("OS-FLV-EXT-DATA:ephemeral", lambda f: int(f.row["ephemeral"])),
    Field("OS-FLV-DISABLED:disabled", lambda f: bool(f.row["disabled"])),
    Field("os-flavor-access:is_public", lambda f: bool(f.row["is_public"])),
    Field("rxtx_factor", lambda f: float(f.row["rxtx_factor"])),
    Field("links", lambda f: f.links),
    Field("description", lambda f: f.row.get("description"), since=V2_55),
    Field("extra_specs", lambda f: f.extra_specs, since=V2_61),
)


def links(base_url: str, flavor_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base_url}/compute/v2.1/flavors/{flavor_id}"},
        {"rel": "bookmark", "href": f"{base_url}/compute/flavors/{flavor_id}"},
    ]


def brief(row: dict[str, Any], version: tuple[int, int], base_url: str) -> dict[str, Any]:
    """A list item of GET /flavors."""
    return render_fields(BRIEF_FIELDS, version, FlavorView(row, links(base_url, row["id"])))


def detail(
    row: dict[str, Any],
    version: tuple[int, int],
    base_url: str,
    extra_specs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """GET /flavors/{id} and the items of /flavors/detail (`extra_specs` shown from 2.61)."""
    view = FlavorView(row, links(base_url, row["id"]), extra_specs)
    return render_fields(DETAIL_FIELDS, version, view)


def next_links(base_url: str, path: str, query: str) -> list[dict[str, str]]:
    return [{"rel": "next", "href": f"{base_url}/compute/v2.1/{path}?{query}"}]
