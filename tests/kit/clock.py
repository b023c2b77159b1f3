"""A clock that only moves when the test says so.

`FakeClock` satisfies `mininova.timeutil.Clock`; install it with `timeutil.use_clock(clock)`
(or the `fake_clock` fixture) and everything that reads the time through timeutil — host
liveness, console tokens, join tokens, capabilities, Keystone token expiry — sees it.
Asyncio sleeps and timeouts keep running on the event loop's real clock.

By default it starts frozen at the real current time, so rows and tokens made before it was
installed (a running controller's admin token, say) still read as fresh; pass `start` for a
fixed date.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime | None = None, monotonic_start: float | None = None) -> None:
        start = start or datetime.now(UTC)
        if monotonic_start is None:
            monotonic_start = time.monotonic()
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._wall = start.astimezone(UTC)
        self._mono = float(monotonic_start)

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def __call__(self) -> datetime:
        """A `() -> datetime` callable too, for code that takes a clock function."""
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward (never back: monotonic time cannot go backwards)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._wall += timedelta(seconds=seconds)
        self._mono += seconds

    def advance_wall(self, seconds: float) -> None:
        """Move only the wall clock: for timers kept in wall time (deleted_at, shelved_at)
        while live agent links stay up (the hub's heartbeat watchdog reads monotonic time,
        and a monotonic jump would close them)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._wall += timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"FakeClock({self._wall.isoformat()}, monotonic={self._mono:g})"
