"""UTC timestamps in the formats the OpenStack APIs use, and the process clock.

Code that reads the time for expiry or liveness asks this module (`now_utc()`, `monotonic()`),
never `datetime.now()`/`time.monotonic()` directly, so a test can swap the clock for a fake
one with `use_clock(clock)`. Asyncio timeouts and sleeps stay on the event loop's own clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never go backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
_clock: Clock = SYSTEM_CLOCK


def get_clock() -> Clock:
    return _clock


def set_clock(clock: Clock | None) -> Clock:
    """Make `clock` the process clock (None: the real one); returns the previous clock."""
    global _clock
    previous, _clock = _clock, clock or SYSTEM_CLOCK
    return previous


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Read the time from `clock` inside the block (tests)."""
    previous = set_clock(clock)
    try:
        yield clock
    finally:
        set_clock(previous)


def now_utc() -> datetime:
    return _clock.now()


def monotonic() -> float:
    return _clock.monotonic()


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


# Views render the same stored times again and again (every server of every list): a pure
# function of an immutable string, so the last few thousand results are kept.
@lru_cache(maxsize=8192)
def nova_time(text: str | None) -> str | None:
    """Nova renders server times as `2024-01-01T00:00:00Z` (no fraction)."""
    if not text:
        return None
    return parse_iso(text).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=8192)
def nova_usec_time(text: str | None) -> str | None:
    """`2024-01-01T00:00:00.000000` as used by launched_at / instance actions."""
    if not text:
        return None
    return parse_iso(text).strftime("%Y-%m-%dT%H:%M:%S.%f")
