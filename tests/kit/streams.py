"""In-memory links: asyncio stream pairs and a pair of protocol Peers, no sockets.

`stream_pair()` gives two (reader, writer) ends; bytes written on one end are read on the
other, `close()` on one end is EOF on the other. The writers have the parts of
`asyncio.StreamWriter` that mininova's code uses (write/drain/close/wait_closed/is_closing/
get_extra_info/can_write_eof/write_eof).

`peer_pair(handlers_a, handlers_b)` connects two `mininova.protocol.peer.Peer`s through
queues (one frame at a time, in order, like a websocket) and records every frame each way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from mininova.protocol.peer import MethodHandler, Peer


class MemoryWriter:
    """The writing half of one end: feeds the other end's StreamReader."""

    def __init__(self, peer_reader: asyncio.StreamReader, name: str) -> None:
        self._peer_reader = peer_reader
        self._closing = False
        self._closed = asyncio.Event()
        self.name = name
        self.written = bytearray()  # everything this end wrote, for assertions

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            raise ConnectionResetError(f"{self.name} is closed")
        data = bytes(data)
        self.written += data
        self._peer_reader.feed_data(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    async def drain(self) -> None:
        if self._closing:
            raise ConnectionResetError(f"{self.name} is closed")
        await asyncio.sleep(0)  # let the reading side run, as a real transport would

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._peer_reader.at_eof():
            self._peer_reader.feed_eof()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self.write_eof()
            self._closed.set()

    def is_closing(self) -> bool:
        return self._closing

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": (self.name, 0), "sockname": (self.name, 0)}.get(name, default)


def stream_pair(
    names: tuple[str, str] = ("a", "b"), limit: int = 2**16
) -> tuple[tuple[asyncio.StreamReader, MemoryWriter], tuple[asyncio.StreamReader, MemoryWriter]]:
    """Two connected ends: `(reader_a, writer_a), (reader_b, writer_b)`.

    Call it inside a running event loop (StreamReader binds to it)."""
    reader_a = asyncio.StreamReader(limit=limit)
    reader_b = asyncio.StreamReader(limit=limit)
    writer_a = MemoryWriter(reader_b, names[0])
    writer_b = MemoryWriter(reader_a, names[1])
    return (reader_a, writer_a), (reader_b, writer_b)


class PeerLink:
    """Two Peers wired back to back; `frames_ab`/`frames_ba` hold what went each way."""

    def __init__(
        self, handlers_a: dict[str, MethodHandler], handlers_b: dict[str, MethodHandler]
    ) -> None:
        self.frames_ab: list[str] = []
        self.frames_ba: list[str] = []
        self._to_b: asyncio.Queue[str | None] = asyncio.Queue()
        self._to_a: asyncio.Queue[str | None] = asyncio.Queue()
        self.a = Peer(self._sender(self._to_b, self.frames_ab), handlers_a, name="a")
        self.b = Peer(self._sender(self._to_a, self.frames_ba), handlers_b, name="b")
        self._pumps = [
            asyncio.create_task(self._pump(self._to_b, self.b)),
            asyncio.create_task(self._pump(self._to_a, self.a)),
        ]

    @staticmethod
    def _sender(queue: asyncio.Queue[str | None], log: list[str]) -> Any:
        async def send(frame: str) -> None:
            log.append(frame)
            queue.put_nowait(frame)

        return send

    @staticmethod
    async def _pump(queue: asyncio.Queue[str | None], peer: Peer) -> None:
        while (frame := await queue.get()) is not None:
            await peer.feed(frame)
        peer.close("link closed")

    def cut(self) -> None:
        """Drop the link: both Peers see it close (pending calls fail with link_down)."""
        self.a.close("link cut")
        self.b.close("link cut")
        self._to_a.put_nowait(None)
        self._to_b.put_nowait(None)

    async def aclose(self) -> None:
        self.cut()
        for task in self._pumps:
            task.cancel()
        for task in self._pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def peer_pair(
    handlers_a: dict[str, MethodHandler] | None = None,
    handlers_b: dict[str, MethodHandler] | None = None,
) -> AsyncIterator[PeerLink]:
    link = PeerLink(handlers_a or {}, handlers_b or {})
    try:
        yield link
    finally:
        await link.aclose()
