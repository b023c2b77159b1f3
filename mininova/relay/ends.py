"""`End` adapters for `websockets` connections and asyncio streams (no aiohttp here).

The aiohttp websocket end lives in `mininova.consoleproxy.ends`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mininova.relay.core import DEFAULT_CHUNK


def close_message(reason: str) -> bytes:
    # A websocket close reason is limited to 123 bytes of UTF-8.
    return reason.encode("utf-8", "replace")[:120]


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
