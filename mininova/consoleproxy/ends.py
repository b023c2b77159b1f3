"""The aiohttp websocket `End` of the byte relay (`mininova.relay`); HTTP side only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mininova.relay.ends import close_message


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
