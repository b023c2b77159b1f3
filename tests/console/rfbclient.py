"""A minimal RFB (VNC) client over the console websocket, for tests and the benchmark."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Any

import aiohttp


class WsBytes:
    """Byte-stream view of a websocket (messages may split or merge RFB messages).

    Like a browser, it keeps reading in the background, so websocket pings are answered even
    while the test is not waiting for data.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.buf = bytearray()
        self.ended: str = ""
        self._arrived = asyncio.Event()
        self._pump = asyncio.create_task(self._read_forever())

    async def _read_forever(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.buf += msg.data
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self.buf += msg.data.encode()
                else:
                    self.ended = f"websocket ended: {msg.type.name} {msg.data!r} {msg.extra!r}"
                    return
                self._arrived.set()
        finally:
            self._arrived.set()

    async def readexactly(self, n: int, timeout: float = 10.0) -> bytes:
        async with asyncio.timeout(timeout):
            while len(self.buf) < n:
                if self.ended:
                    raise ConnectionError(self.ended)
                self._arrived.clear()
                await self._arrived.wait()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def wait_ended(self, timeout: float = 10.0) -> str:
        await asyncio.wait_for(asyncio.shield(self._pump), timeout)
        return self.ended


@dataclass
class RfbSession:
    io: WsBytes
    width: int
    height: int
    name: str

    async def request_update(self, incremental: bool = False) -> None:
        await self.io.write(
            struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height)
        )

    async def read_update(self, timeout: float = 10.0) -> list[tuple[int, int, int, int, bytes]]:
        head = await self.io.readexactly(4, timeout)
        assert head[0] == 0, f"unexpected server message {head[0]}"
        (count,) = struct.unpack(">xxH", head)
        rects = []
        for _ in range(count):
            x, y, w, h, enc = struct.unpack(">HHHHi", await self.io.readexactly(12, timeout))
            assert enc == 0, f"unexpected encoding {enc}"
            rects.append((x, y, w, h, await self.io.readexactly(w * h * 4, timeout)))
        return rects

    async def key(self, keysym: int = 0x61) -> None:
        await self.io.write(struct.pack(">BBxxI", 4, 1, keysym))
        await self.io.write(struct.pack(">BBxxI", 4, 0, keysym))


async def rfb_handshake(ws: aiohttp.ClientWebSocketResponse) -> RfbSession:
    io = WsBytes(ws)
    version = await io.readexactly(12)
    assert version == b"RFB 003.008\n", version
    await io.write(b"RFB 003.008\n")
    (ntypes,) = struct.unpack(">B", await io.readexactly(1))
    types = await io.readexactly(ntypes)
    assert 1 in types, types
    await io.write(b"\x01")
    (result,) = struct.unpack(">I", await io.readexactly(4))
    assert result == 0
    await io.write(b"\x01")  # shared
    w, h = struct.unpack(">HH", await io.readexactly(4))
    await io.readexactly(16)  # pixel format
    (nlen,) = struct.unpack(">I", await io.readexactly(4))
    name = (await io.readexactly(nlen)).decode()
    return RfbSession(io, w, h, name)


async def connect(
    session: aiohttp.ClientSession, url: str, **kw: Any
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(url, protocols=("binary",), autoping=True, **kw)
