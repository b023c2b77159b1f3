"""The aiohttp `End`s of the byte relay (`mininova.relay`): websockets and the agents' raw
tunnel connections; HTTP side only."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from mininova.relay.ends import close_message, take_coalesced


class AiohttpWsEnd:
    """An aiohttp `WebSocketResponse` (server side) or `ClientWebSocketResponse`.

    aiohttp pauses reading from the socket while its receive queue is full, and `send_bytes`
    waits for the transport to drain, so awaiting both gives end-to-end backpressure.
    """

    def __init__(self, ws: Any, name: str) -> None:
        self.ws = ws
        self.name = name

    async def read(self) -> bytes:
        from aiohttp import WSMsgType

        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
                continue
            if msg.type == WSMsgType.TEXT:  # noVNC only sends binary; be lenient
                if msg.data:
                    return msg.data.encode()
                continue
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            return b""  # CLOSE / CLOSING / CLOSED / ERROR

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self, reason: str = "") -> None:
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(message=close_message(reason)), 5)


RAW_LIMIT = 2 << 20  # an AiohttpRawEnd stops reading its socket above this backlog


class AiohttpRawEnd:
    """The agent's raw tunnel connection (`Upgrade: tcp`, `mininova.relay.upgrade`) once
    aiohttp's handler answered 101: bytes as they are, no framing.

    It is the connection's payload parser (`request.protocol.set_parser(end)`): aiohttp
    hands it every chunk read from the socket (`feed_data`), as the bytes object the
    transport made; reading pauses while `limit` bytes wait for `read()`. `write()` goes
    straight to the transport and waits only while the transport is above its high-water mark.
    """

    def __init__(self, request: Any, name: str, limit: int = RAW_LIMIT) -> None:
        self.name = name
        self.limit = limit
        self.protocol = request.protocol
        self.transport = request.transport
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- aiohttp's payload parser interface ---------------------------------------------

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= self.limit and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # not aiohttp's: that would pause its HTTP parser
        self._wake()
        return False, b""

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- End ----------------------------------------------------------------------------

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof or self.transport is None or self.transport.is_closing():
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = take_coalesced(self._chunks)
        self._size -= len(data)
        if self._paused and self._size < self.limit and not self._eof:
            self._paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError(f"{self.name} is closed")
        transport.write(data)
        if self.protocol.writing_paused:
            await self.protocol._drain_helper()  # aiohttp's own drain (StreamWriter.drain)

    async def close(self, reason: str = "") -> None:
        """Close the connection (buffered output is still flushed by the transport)."""
        self._eof = True
        self._wake()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
