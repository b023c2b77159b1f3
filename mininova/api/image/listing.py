"""Glance list semantics: query filters, sort keys, marker/limit (shared with the compute
image proxy). Pure functions over decoded image records."""

from __future__ import annotations

from typing import Any

from mininova.api import pagination
from mininova.api.errors import BadRequest
from mininova.image import store_ops as ops

MAX_LIMIT = 1000

_SORT_KEYS = (
    "created_at",
    "updated_at",
    "name",
    "id",
    "status",
    "size",
    "disk_format",
    "container_format",
    "visibility",
    "min_disk",
    "min_ram",
)
_NUMERIC = ("size", "min_disk", "min_ram")
_IGNORED_PARAMS = frozenset(
    {"limit", "marker", "sort_key", "sort_dir", "sort", "member_status", "os_hidden"}
)
_KNOWN_PARAMS = (
    frozenset(
        {
            "name",
            "status",
            "id",
            "owner",
            "disk_format",
            "container_format",
            "tag",
            "size_min",
            "size_max",
            "protected",
            "visibility",
        }
    )
    | _IGNORED_PARAMS
)


def _in_values(text: str) -> set[str]:
    if text.startswith("in:"):
        return {v.strip().strip('"') for v in text[3:].split(",") if v.strip()}
    return {text}


def sort_spec(query: Any) -> list[tuple[str, bool]]:
    """[(key, descending)] from `sort=k:dir,...` or `sort_key`/`sort_dir` (default created_at
    desc), always ending with id as a tie-breaker."""
    spec: list[tuple[str, bool]] = []
    if "sort" in query:
        for part in query["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            spec.append((key, (direction or "desc") == "desc"))
            if direction not in ("", "asc", "desc"):
                raise BadRequest(f"Invalid sort direction: {direction}")
    else:
        keys = query.getall("sort_key", []) or ["created_at"]
        dirs = query.getall("sort_dir", [])
        for i, key in enumerate(keys):
            direction = dirs[i] if i < len(dirs) else (dirs[0] if dirs else "desc")
            if direction not in ("asc", "desc"):
                raise BadRequest(f"Invalid sort direction: {direction}")
            spec.append((key, direction == "desc"))
    for key, _ in spec:
        if key not in _SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}")
    if all(key != "id" for key, _ in spec):
        spec.append(("id", spec[0][1]))
    return spec


def sort(rows: list[dict[str, Any]], spec: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    for key, desc in reversed(spec):
        # None sorts first ascending, like SQL NULLs in SQLite.
        rows.sort(
            key=lambda r, k=key: (
                (r.get(k) is not None, r.get(k) or 0)
                if k in _NUMERIC
                else (r.get(k) is not None, str(r.get(k) or ""))
            ),
            reverse=desc,
        )
    return rows


def matches(row: dict[str, Any], query: Any) -> bool:
    """Whether an image passes Glance's list filters (any unknown parameter is a property)."""
    for key in ("name", "status", "id", "owner", "disk_format", "container_format"):
        if key in query and str(row.get(key)) not in _in_values(query[key]):
            return False
    for tag in query.getall("tag", []):
        if tag not in row["tags"]:
            return False
    for key, value in (("size_min", "ge"), ("size_max", "le")):
        if key in query:
            try:
                bound = int(query[key])
            except ValueError:
                raise BadRequest(f"Invalid value for {key}.") from None
            size = row.get("size")
            if size is None or (size < bound if value == "ge" else size > bound):
                return False
    if "protected" in query:
        wanted = query["protected"].lower()
        if wanted not in ("true", "false"):
            raise BadRequest("Invalid value for protected: true or false expected.")
        if row["protected"] != (wanted == "true"):
            return False
    if query.get("os_hidden", "false").lower() == "true":
        return False
    for key in query:
        if key not in _KNOWN_PARAMS and row["properties"].get(key) not in _in_values(query[key]):
            return False  # Glance treats any other parameter as a property filter
    return True


def check_visibility(query: Any) -> str | None:
    """The `visibility` filter (None: Glance's default listing)."""
    visibility = query.get("visibility")
    if visibility is not None and visibility != "all" and visibility not in ops.VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {visibility}")
    return visibility


def listed(ctx: Any, rows: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
    """The visible images (`rows`, from `ops.list_visible`) a Glance list shows for `query`."""
    visibility = check_visibility(query)
    out = []
    for row in rows:
        if visibility is None:
            if not ops.listed_by_default(ctx, row):
                continue
        elif not ops.can_see(ctx, row) or (visibility != "all" and row["visibility"] != visibility):
            continue
        if matches(row, query):
            out.append(row)
    return out


def parse_limit(query: Any) -> int | None:
    return pagination.parse_limit(query, MAX_LIMIT)


def paginate(
    rows: list[dict[str, Any]], query: Any, default_limit: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Apply marker and limit to sorted rows; returns (page, more_remain)."""
    marker = query.get("marker")
    if marker is not None:
        index = next((i for i, r in enumerate(rows) if r["id"] == marker), None)
        if index is None:
            raise BadRequest(f"marker [{marker}] not found")
        rows = rows[index + 1 :]
    limit = parse_limit(query)
    if limit is None:
        limit = default_limit
    if limit is None:
        return rows, False
    return rows[:limit], len(rows) > limit
