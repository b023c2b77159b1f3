"""Server group view: below 2.64 `policies` (one) and `metadata`, from 2.64 `policy` and
`rules`; 2.13 adds `project_id` and `user_id`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mininova.api.microversions import V2_13, V2_64, Field, render_fields


@dataclass(frozen=True)
class GroupView:
    row: dict[str, Any]  # rules/metadata decoded (mininova.store.server_groups)
    members: list[str]


GROUP_FIELDS: tuple[Field[GroupView], ...] = (
    Field("id", lambda g: g.row["id"]),
    Field("name", lambda g: g.row["name"]),
    Field("policy", lambda g: g.row["policy"], since=V2_64),
    Field("rules", lambda g: g.row["rules"] or {}, since=V2_64),
    Field("policies", lambda g: [g.row["policy"]], until=V2_64),
    Field("members", lambda g: g.members),
    Field("metadata", lambda g: g.row["metadata"] or {}, until=V2_64),
    Field("project_id", lambda g: g.row["project_id"], since=V2_13),
    Field("user_id", lambda g: g.row["user_id"], since=V2_13),
)


def group(row: dict[str, Any], members: list[str], version: tuple[int, int]) -> dict[str, Any]:
    return render_fields(GROUP_FIELDS, version, GroupView(row, members))
