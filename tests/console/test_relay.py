"""The relay core without sockets: bounded pipe and backpressure with in-memory ends."""

from __future__ import annotations

import asyncio

import pytest

from mininova.relay import AsyncPipe, Pipe, PipeClosed, relay
from tests.kit.wait import settle, wait_for


class MemoryEnd:
    """An in-memory connection end.

    `incoming` feeds `read()` (None = EOF); `write()` appends to `received` but only while
    `flowing` is set, so a test can stall the sink and see the relay stop reading.
    """

    def __init__(
        self, name: str, source: bytes = b"", chunk: int = 4096, endless: bool = False
    ) -> None:
        self.name = name
        self.source = bytearray(source)
        self.chunk = chunk
        self.endless = endless
        self.reads = 0
        self.bytes_read = 0
        self.received = bytearray()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.eof = asyncio.Event()
        self.fail_write = False

    async def read(self) -> bytes:
        await asyncio.sleep(0)  # a fast producer, but yield to the loop (no real time)
        if self.closed.is_set():
            return b""
        if self.endless:
            data = bytes([self.reads % 251]) * self.chunk
        elif self.source:
            data = bytes(self.source[: self.chunk])
            del self.source[: self.chunk]
        else:
            await self.eof.wait()
            return b""
        self.reads += 1
        self.bytes_read += len(data)
        return data

    async def write(self, data: bytes) -> None:
        if self.fail_write:
            raise ConnectionResetError("peer reset")
        await self.flowing.wait()
        self.received += data

    async def close(self, reason: str = "") -> None:
        self.close_reason = reason
        self.closed.set()
        self.eof.set()


def test_pipe_bounds_and_order() -> None:
    pipe = Pipe(capacity=10)
    assert pipe.writable and not pipe.readable
    pipe.push(b"abcdef")
    assert pipe.writable
    pipe.push(b"ghijkl")
    assert not pipe.writable and pipe.size == 12 and pipe.high_water == 12
    assert pipe.pull(4) == b"abcd"
    assert pipe.pull(100) == b"efghijkl"
    assert pipe.pull() == b"" and pipe.size == 0
    pipe.end()
    assert pipe.finished and not pipe.writable
    with pytest.raises(PipeClosed):
        pipe.push(b"x")


async def test_async_pipe_put_waits_for_room() -> None:
    pipe = AsyncPipe(capacity=8)
    await pipe.put(b"12345678")
    blocked = asyncio.create_task(pipe.put(b"9"))
    await settle()
    assert not blocked.done()
    assert await pipe.get(4) == b"1234"
    await asyncio.wait_for(blocked, 1)
    pipe.end()
    assert await pipe.get() == b"56789"  # small chunks are coalesced
    assert await pipe.get() == b""


async def test_backpressure_stalled_sink_stops_reads() -> None:
    chunk = 4096
    fast = MemoryEnd("vnc", chunk=chunk, endless=True)
    slow = MemoryEnd("browser")
    slow.flowing.clear()  # the browser stops draining
    task = asyncio.create_task(relay(fast, slow))
    await wait_for(lambda: fast.bytes_read > 0, 2, message="the first read")
    await settle(200)  # in memory, every read yields: a reader that did not stop would show
    stalled_at = fast.bytes_read
    await settle(200)
    # Reading stopped: the relay holds only the one chunk the stalled writer is writing.
    assert fast.bytes_read == stalled_at == chunk
    slow.flowing.set()
    # it flows again once the sink drains
    await wait_for(lambda: fast.bytes_read > stalled_at, 2, message="reads to resume")
    await slow.close("test over")
    stats = await asyncio.wait_for(task, 2)
    assert max(stats.high_water.values()) == chunk


async def test_data_arrives_intact_both_ways() -> None:
    payload_a = bytes(range(256)) * 1000
    payload_b = b"pong" * 5000
    a = MemoryEnd("a", payload_a, chunk=1000)
    b = MemoryEnd("b", payload_b, chunk=333)

    async def finish() -> None:
        await wait_for(
            lambda: len(b.received) >= len(payload_a) and len(a.received) >= len(payload_b),
            4,
            0.01,
            "both payloads to cross",
        )
        a.eof.set()

    closer = asyncio.create_task(finish())
    stats = await asyncio.wait_for(relay(a, b, capacity=4096, chunk=1500), 5)
    await closer
    assert bytes(b.received) == payload_a and bytes(a.received) == payload_b
    assert stats.a_to_b == len(payload_a) and stats.b_to_a == len(payload_b)
    assert a.closed.is_set() and b.closed.is_set()
    assert stats.ended_by == "a"


async def test_either_side_ending_closes_both() -> None:
    a, b = MemoryEnd("browser"), MemoryEnd("agent", b"hello")
    task = asyncio.create_task(relay(a, b))
    await wait_for(lambda: a.received == b"hello", 2, message="the greeting to cross")
    b.eof.set()  # the agent side goes away
    stats = await asyncio.wait_for(task, 2)
    assert a.closed.is_set() and b.closed.is_set()
    assert "agent closed" in stats.reason


async def test_write_error_closes_both() -> None:
    a, b = MemoryEnd("browser", b"x" * 10), MemoryEnd("agent")
    b.fail_write = True
    stats = await asyncio.wait_for(relay(a, b), 2)
    assert "failed" in stats.reason and "ConnectionResetError" in stats.reason
    assert a.closed.is_set() and b.closed.is_set()


async def test_cancel_closes_both() -> None:
    a, b = MemoryEnd("a"), MemoryEnd("b")
    task = asyncio.create_task(relay(a, b))
    await settle()  # the relay is running and waiting on both ends
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.closed.is_set() and b.closed.is_set()
