"""Keypair views: list items, GET, and the POST answer (2.2 adds `type`)."""

from __future__ import annotations

from typing import Any

from mininova.api.microversions import V2_2, Field, render_fields
from mininova.timeutil import nova_usec_time


def _key(name: str) -> Field[Any]:
    return Field(name, lambda r: r[name])


SUMMARY_FIELDS: tuple[Field[Any], ...] = (
    _key("name"),
    _key("public_key"),
    _key("fingerprint"),
    Field("type", lambda r: r["type"], since=V2_2),
)
FULL_FIELDS: tuple[Field[Any], ...] = (
    _key("public_key"),
    _key("name"),
    _key("fingerprint"),
    _key("user_id"),
    Field("deleted", lambda r: False),
    Field("created_at", lambda r: nova_usec_time(r["created_at"])),
    Field("updated_at", lambda r: None),
    Field("deleted_at", lambda r: None),
    Field("id", lambda r: int(r["id"])),
    Field("type", lambda r: r["type"], since=V2_2),
)
CREATED_FIELDS: tuple[Field[Any], ...] = (
    _key("name"),
    _key("public_key"),
    _key("fingerprint"),
    _key("user_id"),
    Field("private_key", lambda r: r["private_key"], when=lambda r: r["private_key"] is not None),
    Field("type", lambda r: r["type"], since=V2_2),
)


def summary(row: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """A list item of GET /os-keypairs (wrapped in {"keypair": …} by the caller)."""
    return render_fields(SUMMARY_FIELDS, version, row)


def full(row: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """GET /os-keypairs/{name}."""
    return render_fields(FULL_FIELDS, version, row)


def created(row: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """POST /os-keypairs: `private_key` only when the key was generated."""
    return render_fields(CREATED_FIELDS, version, row)
