"""limit/marker pagination shared by every list API (Nova's 400 messages)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from mininova.api.errors import BadRequest

T = TypeVar("T")


def parse_limit(query: Mapping[str, str], maximum: int | None = None) -> int | None:
    """The `limit` parameter: None when absent, 400 when not a non-negative integer."""
    if "limit" not in query:
        return None
    try:
        limit = int(query["limit"])
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, maximum) if maximum is not None else limit


def after_marker(items: Sequence[T], marker: str | None, key: Callable[[T], str]) -> list[T]:
    """The items after the one whose key is `marker`; 400 for an unknown marker."""
    if marker is None:
        return list(items)
    keys = [key(item) for item in items]
    if marker not in keys:
        raise BadRequest(f"marker [{marker}] not found")
    return list(items[keys.index(marker) + 1 :])


def paginate(
    items: Sequence[T],
    query: Mapping[str, str],
    key: Callable[[T], str],
    maximum: int | None = None,
) -> tuple[list[T], int | None]:
    """Apply marker then limit; returns the page and the limit used."""
    page = after_marker(items, query.get("marker"), key)
    limit = parse_limit(query, maximum)
    return (page[:limit] if limit is not None else page), limit


def next_query(query: Mapping[str, Any], last_key: str) -> str:
    """The query string of the next page: the same parameters (repeated ones too) with a new
    marker, URL-encoded (a name filter or marker may hold `&`, `=`, `#` or spaces)."""
    params = [(k, v) for k, v in query.items() if k != "marker"]
    params.append(("marker", last_key))
    return urlencode(params, quote_via=quote)
