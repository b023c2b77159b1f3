"""`relay.End` adapters for aiohttp websockets, `websockets` connections and asyncio streams."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mininova.consoleproxy.relay import DEFAULT_CHUNK


def _close_message(reason: str) -> bytes:
    # A websocket close reason is limited to 123 bytes of UTF-8.
    return reason.encode("utf-8", "replace")[:120]


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
                await asyncio.wait_for(self.ws.close(message=_close_message(reason)), 5)


class WebsocketsEnd:
    """A connection of the `websockets` library (asyncio implementation)."""

    def __init__(self, conn: Any, name: str) -> None:
        self.conn = conn
        self.name = name

    async def read(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        while True:
            try:
                data = await self.conn.recv()
            except ConnectionClosed:
                return b""
            if isinstance(data, str):
                data = data.encode()
            if data:
                return data

    async def write(self, data: bytes) -> None:
        await self.conn.send(data)

    async def close(self, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(reason=reason[:120]), 5)


class StreamEnd:
    """An asyncio (reader, writer) pair: a TCP or unix socket."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        name: str,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.chunk = chunk

    async def read(self) -> bytes:
        try:
            return await self.reader.read(self.chunk)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)
