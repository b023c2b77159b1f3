"""`SocketEnd`: the relay's socket end on asyncio's transport (no StreamReader), in memory
(a fake transport) and over loopback TCP."""

from __future__ import annotations

import asyncio

import pytest

from mininova.relay import SocketEnd, connect_socket_end, relay
from mininova.relay.ends import COALESCE
from tests.kit.wait import settle, wait_for


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.paused = False
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def fake_end(limit: int = 1024) -> tuple[SocketEnd, FakeTransport]:
    end = SocketEnd("guest", limit=limit)
    transport = FakeTransport()
    end.connection_made(transport)
    return end, transport


async def test_chunks_are_handed_over_as_received_and_small_ones_joined() -> None:
    end, _ = fake_end(limit=1 << 20)
    big = b"x" * (COALESCE + 1)
    end.data_received(big)
    end.data_received(b"a")
    assert await end.read() is big  # no copy of a big chunk, not joined with what follows
    end.data_received(b"b")
    end.data_received(b"c")
    assert await end.read() == b"abc"  # small chunks waiting together: one write
    end.eof_received()
    assert await end.read() == b""


async def test_reading_pauses_above_the_limit_and_resumes_when_read() -> None:
    end, transport = fake_end(limit=10)
    end.data_received(b"12345")
    assert not transport.paused
    end.data_received(b"67890")
    assert transport.paused  # 10 bytes wait: stop reading the socket
    assert await end.read() == b"1234567890"
    assert not transport.paused


async def test_read_waits_for_data_and_ends_on_connection_lost() -> None:
    end, _ = fake_end()
    reader = asyncio.create_task(end.read())
    await settle()
    assert not reader.done()
    end.data_received(b"late")
    assert await asyncio.wait_for(reader, 1) == b"late"
    end.data_received(b"tail")
    end.connection_lost(None)
    assert await end.read() == b"tail"  # what arrived before the loss is still delivered
    assert await end.read() == b""
    with pytest.raises(ConnectionResetError):
        await end.write(b"x")


async def test_write_waits_while_the_transport_is_paused() -> None:
    end, transport = fake_end()
    end.pause_writing()
    writer = asyncio.create_task(end.write(b"data"))
    await settle()
    assert transport.written == b"data" and not writer.done()
    end.resume_writing()
    await asyncio.wait_for(writer, 1)


async def test_relays_a_tcp_echo_server_intact() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        end = await connect_socket_end("127.0.0.1", port, "guest")
        payload = bytes(range(256)) * 8192  # 2 MiB
        await end.write(payload)
        got = bytearray()
        while len(got) < len(payload):
            got += await asyncio.wait_for(end.read(), 5)
        assert bytes(got) == payload
        await end.close("done")
        assert end.transport is not None and end.transport.is_closing()
    finally:
        server.close()
        await server.wait_closed()


async def test_relay_between_two_socket_ends_closes_both_when_one_side_ends() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        writer.write(b"hello")
        await reader.read()  # until the relay closes its side

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        a = await connect_socket_end("127.0.0.1", port, "a")
        b = await connect_socket_end("127.0.0.1", port, "b")
        task = asyncio.create_task(relay(a, b))
        await wait_for(lambda: len(accepted) == 2, 2, message="both connections")
        accepted[0].close()  # one peer goes away
        stats = await asyncio.wait_for(task, 5)
        assert "closed" in stats.reason
        assert a.transport is not None and a.transport.is_closing()
        assert b.transport is not None and b.transport.is_closing()
    finally:
        server.close()
        await server.wait_closed()
