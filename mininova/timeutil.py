"""UTC timestamps in the formats the OpenStack APIs use."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """Microsecond ISO-8601 with Z, as stored in the database."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_iso() -> str:
    return iso(now_utc())


def parse_iso(text: str) -> datetime:
    text = text.strip().replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def nova_time(text: str | None) -> str | None:
    """Nova renders server times as `2024-01-01T00:00:00Z` (no fraction)."""
    if not text:
        return None
    return parse_iso(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def nova_usec_time(text: str | None) -> str | None:
    """`2024-01-01T00:00:00.000000` as used by launched_at / instance actions."""
    if not text:
        return None
    return parse_iso(text).strftime("%Y-%m-%dT%H:%M:%S.%f")
