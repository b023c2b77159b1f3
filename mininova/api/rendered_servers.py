"""Encoded server documents kept between `GET /servers/detail` requests.

A polling client (the dashboard, a wait loop, `changes-since` pollers) is sent the same
servers again and again, each rendered from the same row. The listing as a whole changes with
every write (`ResponseCache` keeps it only until then), but most of its servers do not: each
server's encoded document is kept under everything it is rendered from (the row's raw
values as read, its floating IPs and security group names, the microversion, the caller's
admin role, the host status), so a kept document is exactly what rendering would give.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_MAX_ENTRIES = 4096


class RenderedServers:
    """An LRU of encoded server documents, at most `max_entries` of them."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        self._entries[key] = body
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
