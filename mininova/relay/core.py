"""Byte relay between two connection ends, with backpressure and bounded buffers.

`relay(a, b)` moves bytes both ways between two `End`s, one task per direction, each read
handed straight to the other end's write (no intermediate buffer, no copy, no task hand-off):

    a.read() -> b.write()        b.read() -> a.write()

Backpressure: the next read only happens once the sink's `write()` returned, and a `write()`
returns only once the sink has drained below its own transport limit, so a fast side can never
make the relay hold more than one read per direction, however slow the other side is; the
ends' transports (aiohttp's and `websockets`' read queues, asyncio's StreamReader limit) stop
reading from their sockets when their own bounded buffers are full. When either side ends (EOF,
error, close), both ends are closed and the relay returns its statistics.

`Pipe` (a plain bounded byte buffer, sans-I/O) and `AsyncPipe` (awaitable put/get on top of it)
are kept as building blocks for ends that need a bounded queue of their own.

An `End` is anything with `async read() -> bytes` (b"" at the end), `async write(data)` and
`async close(reason)`; `mininova.relay.ends` adapts `websockets` connections, asyncio
streams and plain sockets (`SocketEnd`), `mininova.consoleproxy.ends` aiohttp websockets;
tests use in-memory ends.

Pure asyncio (no aiohttp): the agent's console tunnel and the console proxy share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 256 * 1024
DEFAULT_CHUNK = 256 * 1024


class End(Protocol):
    name: str

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self, reason: str = "") -> None: ...


class PipeClosed(Exception):
    """Data was pushed into a pipe whose producer already ended it."""


class Pipe:
    """A bounded FIFO of bytes. `writable` says whether the producer may push more.

    The bound is soft by one chunk: a push is accepted while fewer than `capacity` bytes are
    buffered, so the buffer never exceeds `capacity + len(largest chunk)`.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.high_water = 0
        self.total_in = 0
        self.total_out = 0

    @property
    def writable(self) -> bool:
        return not self.eof and self.size < self.capacity

    @property
    def readable(self) -> bool:
        return self.size > 0

    @property
    def finished(self) -> bool:
        return self.eof and self.size == 0

    def push(self, data: bytes) -> None:
        if self.eof:
            raise PipeClosed("pipe already ended")
        if not data:
            return
        self._chunks.append(bytes(data))
        self.size += len(data)
        self.total_in += len(data)
        self.high_water = max(self.high_water, self.size)

    def pull(self, max_bytes: int = DEFAULT_CHUNK) -> bytes:
        """Take up to `max_bytes` (coalescing small chunks); b"" when empty."""
        out: list[bytes] = []
        taken = 0
        while self._chunks and taken < max_bytes:
            chunk = self._chunks[0]
            room = max_bytes - taken
            if len(chunk) <= room:
                out.append(self._chunks.popleft())
                taken += len(chunk)
            else:
                out.append(chunk[:room])
                self._chunks[0] = chunk[room:]
                taken += room
        self.size -= taken
        self.total_out += taken
        return b"".join(out)

    def end(self) -> None:
        self.eof = True


class AsyncPipe:
    """`Pipe` with awaitable put/get: `put` waits for room, `get` waits for data."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.pipe = Pipe(capacity)
        self._changed = asyncio.Event()

    def _wake(self) -> None:
        self._changed.set()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def put(self, data: bytes) -> None:
        while not self.pipe.writable:
            if self.pipe.eof:
                raise PipeClosed("pipe already ended")
            await self._wait()
        self.pipe.push(data)
        self._wake()

    async def get(self, max_bytes: int = DEFAULT_CHUNK) -> bytes:
        """Next bytes, or b"" once the producer ended and everything was taken."""
        while not self.pipe.readable:
            if self.pipe.eof:
                return b""
            await self._wait()
        data = self.pipe.pull(max_bytes)
        self._wake()
        return data

    def end(self) -> None:
        self.pipe.end()
        self._wake()


@dataclass
class RelayStats:
    a_to_b: int = 0
    b_to_a: int = 0
    ended_by: str = ""
    reason: str = ""
    high_water: dict[str, int] = field(default_factory=dict)


async def _pump(src: End, dst: End, moved: list[int]) -> str:
    """Move bytes src -> dst until src ends; each read is written before the next read.

    One task and no intermediate buffer per direction: a chunk goes from `src.read()`
    straight to `dst.write()` (no copy, no hand-off to another task), and the next read only
    happens once the sink took the previous chunk. The ends' own transports and the kernel's
    socket buffers keep the bytes flowing meanwhile, up to their limits (that is the
    pipelining; the relay itself holds at most one chunk per direction).
    """
    try:
        while True:
            data = await src.read()
            if not data:
                return f"{src.name} closed"
            moved[0] += len(data)
            if len(data) > moved[1]:
                moved[1] = len(data)
            await dst.write(data)
    except Exception as exc:
        return f"{src.name}->{dst.name} failed: {type(exc).__name__}: {exc}"


async def relay(
    a: End, b: End, *, capacity: int = DEFAULT_CAPACITY, chunk: int = DEFAULT_CHUNK
) -> RelayStats:
    """Relay both ways until one side ends; then close both ends. Cancellation-safe.

    `capacity` and `chunk` are accepted for compatibility and no longer used: the relay
    buffers at most one read per direction (`RelayStats.high_water` is the largest one)."""
    del capacity, chunk
    ab, ba = [0, 0], [0, 0]
    forward = asyncio.create_task(_pump(a, b, ab), name=f"relay {a.name}->{b.name}")
    backward = asyncio.create_task(_pump(b, a, ba), name=f"relay {b.name}->{a.name}")
    stats = RelayStats()
    try:
        done, _ = await asyncio.wait({forward, backward}, return_when=asyncio.FIRST_COMPLETED)
        first = forward if forward in done else backward
        stats.ended_by = a.name if first is forward else b.name
        stats.reason = first.result() if not first.cancelled() else "cancelled"
    finally:
        for task in (forward, backward):
            task.cancel()
        await asyncio.gather(forward, backward, return_exceptions=True)
        stats.a_to_b, stats.b_to_a = ab[0], ba[0]
        stats.high_water = {f"{a.name}->{b.name}": ab[1], f"{b.name}->{a.name}": ba[1]}
        reason = stats.reason or "relay stopped"
        for end in (a, b):
            with contextlib.suppress(Exception):
                await end.close(reason)
    return stats
