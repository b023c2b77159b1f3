"""Neutron's list query: attribute filters (repeated keys are lists), `fields=`, sorting and
`limit`/`marker` pagination, applied to records already rendered by a view."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from mininova.api.network.errors import bad_request, invalid_input

_PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
_TAG_FILTERS = {"tags", "tags-any", "not-tags", "not-tags-any"}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass
class Query:
    filters: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    limit: int | None = None
    marker: str | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (key, descending)


def to_bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise invalid_input(f"'{value}' cannot be converted to boolean")


def parse(request: web.Request, attributes: Iterable[str]) -> Query:
    """The query of a list request; 400 for a filter on an attribute the resource lacks."""
    known = set(attributes)
    query = Query()
    for key in request.query:
        values = request.query.getall(key)
        if key == "fields":
            query.fields.extend(v for value in values for v in value.split(",") if v)
        elif key == "limit":
            text = values[-1]
            if not text.isdigit():
                raise bad_request(f"Limit must be an integer 0 or greater and not '{text}'")
            query.limit = int(text) or None
        elif key == "marker":
            query.marker = values[-1]
        elif key in ("sort_key", "sort_dir", "page_reverse"):
            continue
        elif key in known or key in _TAG_FILTERS:
            query.filters[key] = values
        else:
            raise bad_request(f"[{key}] is invalid attribute for filtering")
    keys = request.query.getall("sort_key", [])
    dirs = request.query.getall("sort_dir", [])
    if dirs and len(dirs) != len(keys):
        raise bad_request("The number of sort_keys and sort_dirs must be same")
    for index, key in enumerate(keys):
        if key not in known:
            raise bad_request(f"{key} is an invalid attribute for sort_keys")
        direction = dirs[index].lower() if dirs else "asc"
        if direction not in ("asc", "desc"):
            raise bad_request(f"{direction} is an invalid value for sort_dirs")
        query.sort.append((key, direction == "desc"))
    return query


def _matches_value(actual: Any, wanted: list[str]) -> bool:
    if isinstance(actual, bool):
        return actual in {to_bool(w) for w in wanted}
    if isinstance(actual, list):  # e.g. `subnets`, `availability_zones`: any listed value
        return any(str(a) in wanted for a in actual)
    if actual is None:
        return "" in wanted or "None" in wanted
    return str(actual) in wanted


def _matches_fixed_ips(actual: list[dict[str, Any]], wanted: list[str]) -> bool:
    """`fixed_ips=ip_address=…` / `subnet_id=…` / `ip_address_substr=…`: every one must match."""
    for item in wanted:
        key, _, value = item.partition("=")
        if key == "ip_address_substr":
            ok = any(value in (ip.get("ip_address") or "") for ip in actual)
        elif key in ("ip_address", "subnet_id"):
            ok = any(str(ip.get(key)) == value for ip in actual)
        else:
            raise bad_request(f"Invalid fixed_ips filter '{item}'")
        if not ok:
            return False
    return True


def _matches_tags(tags: list[str], key: str, wanted: list[str]) -> bool:
    names = {t for value in wanted for t in value.split(",") if t}
    have = set(tags)
    if key == "tags":
        return names <= have
    if key == "tags-any":
        return bool(names & have)
    if key == "not-tags":
        return not names <= have
    return not names & have  # not-tags-any


def matches(item: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        if key in _TAG_FILTERS:
            if not _matches_tags(item.get("tags", []), key, wanted):
                return False
        elif key == "fixed_ips":
            if not _matches_fixed_ips(item.get("fixed_ips", []), wanted):
                return False
        elif not _matches_value(item.get(key), wanted):
            return False
    return True


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def select(
    request: web.Request,
    items: list[dict[str, Any]],
    query: Query,
    collection: str,
    not_found: Callable[[str], Exception],
) -> dict[str, Any]:
    """The list body: filtered, sorted, paginated (`<collection>_links` when limited), fields."""
    found = [item for item in items if matches(item, query.filters)]
    for key, descending in reversed(query.sort):
        found.sort(key=lambda item, k=key: _sort_value(item.get(k)), reverse=descending)
    if query.marker is not None:
        ids = [item["id"] for item in found]
        if query.marker not in ids:
            raise not_found(query.marker)
        found = found[ids.index(query.marker) + 1 :]
    body: dict[str, Any] = {}
    if query.limit is not None and len(found) > query.limit:
        found = found[: query.limit]
        params = [(k, v) for k in request.query for v in request.query.getall(k) if k != "marker"]
        params.append(("marker", found[-1]["id"]))
        href = str(request.url.with_query(None)) + "?" + urlencode(params)
        body[f"{collection}_links"] = [{"rel": "next", "href": href}]
    body[collection] = [only(item, query.fields) for item in found]
    return body


def only(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The item with only `fields` (all of it when none are asked for)."""
    if not fields:
        return item
    return {key: value for key, value in item.items() if key in fields}


def fields_of(request: web.Request) -> list[str]:
    """`fields=` of a show request."""
    return [v for value in request.query.getall("fields", []) for v in value.split(",") if v]
