"""The shared test kit itself: fake clock, timeutil injection, wait_for, memory streams/peers."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

import pytest

from mininova import timeutil
from mininova.protocol import ProtocolError
from mininova.trust.capabilities import Capabilities, CapabilityDenied
from mininova.virt.fakevnc import FakeVncState, _session
from tests.kit.clock import FakeClock
from tests.kit.net import free_port
from tests.kit.streams import peer_pair, stream_pair
from tests.kit.wait import settle, wait_for, wait_until

START = datetime(2030, 1, 1, tzinfo=UTC)


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(START, monotonic_start=10)
    assert clock.now() == START and clock() == START and clock.monotonic() == 10
    clock.advance(1.5)
    assert (clock.now() - START).total_seconds() == 1.5 and clock.monotonic() == 11.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        FakeClock(datetime(2030, 1, 1))  # naive


def test_use_clock_swaps_the_process_clock_and_restores_it() -> None:
    clock = FakeClock(START)
    with timeutil.use_clock(clock):
        assert timeutil.now_utc() == START
        assert timeutil.now_iso() == "2030-01-01T00:00:00.000000Z"
        clock.advance(60)
        assert timeutil.monotonic() == clock.monotonic()
        assert timeutil.now_utc() == datetime(2030, 1, 1, 0, 1, tzinfo=UTC)
    assert timeutil.get_clock() is timeutil.SYSTEM_CLOCK
    assert abs((timeutil.now_utc() - datetime.now(UTC)).total_seconds()) < 5


def test_fake_clock_fixture_is_installed(fake_clock: FakeClock) -> None:
    assert timeutil.get_clock() is fake_clock


def test_capability_expires_on_the_fake_clock(fake_clock: FakeClock) -> None:
    caps = Capabilities()  # reads timeutil.monotonic, i.e. the fake clock
    token = caps.grant("h1", "GET", "/x", ttl=30)
    fake_clock.advance(29.9)
    assert caps.check(token, "h1", "GET", "/x").host == "h1"
    fake_clock.advance(0.1)
    with pytest.raises(CapabilityDenied) as err:
        caps.check(token, "h1", "GET", "/x")
    assert err.value.status == 401 and len(caps) == 0


def test_free_port_can_be_bound() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


async def test_wait_for_returns_the_value_and_accepts_async_predicates() -> None:
    box: list[int] = []
    asyncio.get_running_loop().call_later(0.05, box.append, 7)
    assert await wait_for(lambda: box, 2) == [7]

    async def ready() -> str:
        return "yes"

    assert await wait_for(ready, 1) == "yes"


async def test_wait_for_times_out_with_the_message() -> None:
    state = {"n": 0}
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for n to be 1 \(0\)"):
        await wait_for(lambda: state["n"] == 1, 0.05, 0.01, lambda: f"n to be 1 ({state['n']})")


def test_wait_until_blocks_until_true() -> None:
    calls = iter([0, 0, 3])
    assert wait_until(lambda: next(calls), 2, 0.001) == 3
    with pytest.raises(AssertionError, match="nothing"):
        wait_until(lambda: False, 0.01, 0.001, "nothing")


async def test_stream_pair_carries_bytes_and_eof() -> None:
    (ra, wa), (rb, wb) = stream_pair()
    wa.write(b"ping\n")
    await wa.drain()
    assert await rb.readline() == b"ping\n"
    wb.write(b"pong")
    wb.close()
    await wb.wait_closed()
    assert await ra.read() == b"pong"  # then EOF
    assert ra.at_eof() and wb.is_closing() and wb.written == b"pong"
    with pytest.raises(ConnectionResetError):
        wb.write(b"late")


async def test_stream_pair_drives_the_fake_vnc_server() -> None:
    """A real protocol handler over memory streams: the RFB 3.8 handshake, no socket."""
    (client_r, client_w), (server_r, server_w) = stream_pair(("browser", "vnc"))
    state = FakeVncState(name="vm")
    server = asyncio.create_task(_session(state, server_r, server_w))  # type: ignore[arg-type]
    try:
        assert await client_r.readexactly(12) == b"RFB 003.008\n"
        client_w.write(b"RFB 003.008\n")
        assert await client_r.readexactly(2) == b"\x01\x01"  # security: None only
        client_w.write(b"\x01")
        assert await client_r.readexactly(4) == struct.pack(">I", 0)  # SecurityResult OK
        client_w.write(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", await client_r.readexactly(4))
        assert (width, height) == (state.width, state.height)
    finally:
        client_w.close()
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


async def test_peer_pair_calls_notifies_and_cuts() -> None:
    seen: list[dict] = []
    release = asyncio.Event()

    async def add(params: dict) -> int:
        return params["a"] + params["b"]

    async def note(params: dict) -> None:
        seen.append(params)

    async def hang(params: dict) -> None:
        await release.wait()

    async with peer_pair({}, {"add": add, "note": note, "hang": hang}) as link:
        assert await link.a.call("add", {"a": 2, "b": 3}) == 5
        await link.a.notify("note", {"x": 1})
        await wait_for(lambda: seen, 1)
        assert seen == [{"x": 1}]
        with pytest.raises(ProtocolError) as err:
            await link.a.call("nope", {})
        assert err.value.code == "unknown_method"
        assert len(link.frames_ab) == 3 and len(link.frames_ba) == 2  # no reply to a notify

        pending = asyncio.create_task(link.a.call("hang", {}))
        await settle()
        link.cut()
        with pytest.raises(ProtocolError) as err:
            await pending
        assert err.value.code == "link_down"
        release.set()
