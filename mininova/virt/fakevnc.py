"""A tiny stand-in VNC (RFB) server for the fake driver (stub: the console work replaces it)."""

from __future__ import annotations

import asyncio


async def serve_fake_vnc(name: str) -> tuple[asyncio.AbstractServer, int]:
    """Start a loopback TCP server that greets like an RFB 3.8 server; returns (server, port)."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"RFB 003.008\n")
        await writer.drain()
        try:
            while await reader.read(4096):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port
