"""Rendered bodies of read-only listings, kept while the database has not changed.

Polling clients (`openstack server list` in a wait loop, Terraform, the dashboard) ask for
the same listing again and again while nothing happens. A body is kept with the store's
change marker taken before its rows were read, and served again only while the marker is
the same and its own expiry (a view that depends on the clock, e.g. a host going DOWN when
its heartbeats stop) has not passed. Any committed write, by this process or another,
changes the marker, so a kept body is never older than the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from mininova import timeutil

DEFAULT_MAX_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class _Entry:
    marker: Hashable
    expires: float  # timeutil.monotonic(); inf when only a write can make it stale
    body: bytes


class ResponseCache:
    """A byte-bounded LRU of bodies keyed by what selects them (path and query, microversion,
    the caller's project and roles)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def get(self, key: Hashable, marker: Hashable) -> bytes | None:
        """The body kept for `key` if nothing was written since and it has not expired."""
        entry = self._entries.get(key)
        if entry is None or entry.marker != marker or timeutil.monotonic() >= entry.expires:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.body

    def put(self, key: Hashable, marker: Hashable, body: bytes, ttl: float | None = None) -> None:
        """Keep `body`, read after `marker` was taken; `ttl` seconds at most when given."""
        if len(body) > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old.body)
        expires = float("inf") if ttl is None else timeutil.monotonic() + ttl
        self._entries[key] = _Entry(marker, expires, body)
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._entries)
