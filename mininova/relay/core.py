"""Byte relay between two connection ends, with backpressure and bounded buffers.

Sans-I/O core: `Pipe` is a plain bounded byte buffer (no asyncio, no sockets). `AsyncPipe`
adds waiting on top of it, and `relay(a, b)` moves bytes both ways between two `End`s through
one `AsyncPipe` per direction:

    a.read() -> pipe(a->b) -> b.write()        b.read() -> pipe(b->a) -> a.write()

Backpressure: a reader only reads the next chunk when its pipe has room (fewer than `capacity`
bytes buffered) and a writer's `write()` returns only once the sink has drained below its own
transport limit, so a fast side can never make us buffer more than `capacity + chunk` bytes per
direction, however slow the other side is. When either side ends (EOF, error, close), both ends
are closed and the relay returns its statistics.

An `End` is anything with `async read() -> bytes` (b"" at the end), `async write(data)` and
`async close(reason)`; `mininova.relay.ends` adapts `websockets` connections and asyncio
streams, `mininova.consoleproxy.ends` aiohttp websockets; tests use in-memory ends.

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
DEFAULT_CHUNK = 64 * 1024


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


async def _reader(src: End, pipe: AsyncPipe) -> str:
    try:
        while True:
            data = await src.read()
            if not data:
                return f"{src.name} closed"
            await pipe.put(data)
    finally:
        pipe.end()


async def _writer(pipe: AsyncPipe, dst: End, chunk: int) -> str:
    while True:
        data = await pipe.get(chunk)
        if not data:
            return "drained"
        await dst.write(data)


async def _direction(src: End, dst: End, pipe: AsyncPipe, chunk: int) -> str:
    """Move bytes src -> dst until src ends (then flush what is buffered) or a side fails."""
    reader = asyncio.create_task(_reader(src, pipe))
    writer = asyncio.create_task(_writer(pipe, dst, chunk))
    try:
        done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            exc = task.exception()
            if exc is not None:
                return f"{src.name}->{dst.name} failed: {type(exc).__name__}: {exc}"
        if not writer.done():
            await writer
        return reader.result()
    finally:
        for task in (reader, writer):
            task.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)


async def relay(
    a: End, b: End, *, capacity: int = DEFAULT_CAPACITY, chunk: int = DEFAULT_CHUNK
) -> RelayStats:
    """Relay both ways until one side ends; then close both ends. Cancellation-safe."""
    ab, ba = AsyncPipe(capacity), AsyncPipe(capacity)
    forward = asyncio.create_task(_direction(a, b, ab, chunk), name=f"relay {a.name}->{b.name}")
    backward = asyncio.create_task(_direction(b, a, ba, chunk), name=f"relay {b.name}->{a.name}")
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
        stats.a_to_b = ab.pipe.total_out
        stats.b_to_a = ba.pipe.total_out
        stats.high_water = {
            f"{a.name}->{b.name}": ab.pipe.high_water,
            f"{b.name}->{a.name}": ba.pipe.high_water,
        }
        reason = stats.reason or "relay stopped"
        for end in (a, b):
            with contextlib.suppress(Exception):
                await end.close(reason)
    return stats
