"""The one HTTP port under slowloris and connection floods (mininova.api.server_limits).

Raw sockets against an in-process controller: a client trickling its headers is closed after
`header_timeout`, a client address over `max_connections_per_address` (or the whole server over
`max_connections`) gets a 503 with Retry-After while other clients are served, an idle
keep-alive connection closes after `keepalive_timeout`, and an agent's upgraded link neither
counts against its address nor is cut by the header timer.

The controller always runs on SQLite here: nothing in this file depends on the store backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from mininova.controller import Controller
from tests.kit.fake_cloud import fake_agent, running_controller
from tests.kit.net import free_port
from tests.kit.wait import wait_for

HEADER_TIMEOUT = 1.0
SLOW_REQUEST = b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 40 + b"\r\n\r\n"


@contextlib.asynccontextmanager
async def cloud(tmp_path: Path, **settings: Any) -> AsyncIterator[Controller]:
    settings.setdefault("header_timeout", HEADER_TIMEOUT)
    async with running_controller(tmp_path, None, **settings) as ctl:
        yield ctl


async def connect(
    ctl: Controller, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = ctl.config.listen_port
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float = 0.2) -> int:
    """Send `data` one byte per `interval` s (a slowloris); the bytes sent before the server
    closed the connection."""
    sent = 0
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(interval)
    except ConnectionError:
        pass
    return sent


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes; AssertionError if it keeps it open."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""
    except TimeoutError:
        raise AssertionError(f"the server still held the connection after {timeout}s") from None


async def get_status(ctl: Controller, source: str = "127.0.0.1") -> tuple[int, dict[str, str]]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(ctl.config.base_url + "/healthcheck") as resp,
    ):
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_slowloris_is_closed_after_header_timeout(tmp_path: Path) -> None:
    async with cloud(tmp_path) as ctl:
        reader, writer = await connect(ctl)
        sender = asyncio.create_task(trickle(writer, SLOW_REQUEST))
        answer = await read_until_closed(reader, 5 * HEADER_TIMEOUT)
        sent = await sender
        writer.close()
        assert answer == b"", answer  # closed without an answer, before its headers ended
        assert sent < len(SLOW_REQUEST)
        # A fresh client is served as usual.
        assert (await get_status(ctl))[0] == 200


async def test_slowloris_on_a_kept_alive_connection_is_closed(tmp_path: Path) -> None:
    """The header timer starts again with the first byte of each next request."""
    async with cloud(tmp_path) as ctl:
        reader, writer = await connect(ctl)
        writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert status_line.startswith(b"HTTP/1.1 200"), status_line
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\nOK"), 5)
        sender = asyncio.create_task(trickle(writer, SLOW_REQUEST))
        answer = await read_until_closed(reader, 5 * HEADER_TIMEOUT)
        sent = await sender
        writer.close()
        assert answer == b"" and sent < len(SLOW_REQUEST), (answer, sent)


async def test_idle_keepalive_connection_closes_after_keepalive_timeout(tmp_path: Path) -> None:
    async with cloud(tmp_path, keepalive_timeout=1.0) as ctl:
        reader, writer = await connect(ctl)
        writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await read_until_closed(reader, 5.0)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"OK"), answer


async def test_address_over_its_cap_is_refused_while_others_are_served(tmp_path: Path) -> None:
    """N slowloris connections fill 127.0.0.1's budget: its next connection gets a 503 with
    Retry-After, a client from another address is served meanwhile, and once the header
    timer closed the slowloris the first address is served again."""
    cap = 4
    # 3 s: the slowloris must still be connected while the other clients are checked
    async with cloud(tmp_path, max_connections_per_address=cap, header_timeout=3.0) as ctl:
        slow = [await connect(ctl) for _ in range(cap)]
        senders = [asyncio.create_task(trickle(w, SLOW_REQUEST)) for _, w in slow]
        # Connection N+1 from the same address: refused with a 503 a client can read.
        status, headers = await get_status(ctl)
        assert status == 503 and headers["Retry-After"].isdigit(), (status, headers)
        reader, writer = await connect(ctl)
        refusal = await read_until_closed(reader, 5)
        writer.close()
        assert refusal.startswith(b"HTTP/1.1 503"), refusal
        assert b'"serviceUnavailable"' in refusal and b"Retry-After:" in refusal
        # Another address is served while the slowloris hold theirs.
        assert (await get_status(ctl, source="127.0.0.2"))[0] == 200
        assert all(not s.done() for s in senders)  # the slowloris are still connected
        for reader, _ in slow:
            assert await read_until_closed(reader, 10.0) == b""
        await asyncio.gather(*senders)
        for _, w in slow:
            w.close()
        assert (await get_status(ctl))[0] == 200


async def test_server_over_max_connections_refuses_then_recovers(tmp_path: Path) -> None:
    async with cloud(tmp_path, max_connections=3, header_timeout=30.0) as ctl:
        held = [await connect(ctl, source=f"127.0.0.{i + 1}") for i in range(3)]
        assert (await get_status(ctl, source="127.0.0.9"))[0] == 503
        held[0][1].close()
        limits = ctl.limits
        assert limits is not None
        await wait_for(lambda: limits.total < 3, 5, message="a held connection to be released")
        assert (await get_status(ctl, source="127.0.0.9"))[0] == 200
        for _, w in held[1:]:
            w.close()


async def test_agent_link_leaves_the_address_count_and_outlives_the_header_timer(
    tmp_path: Path,
) -> None:
    """An upgraded (101) agent link does not count (in all or against its address), and the
    header timer never cuts it: it is still the same link after an idle probe was closed."""
    async with cloud(tmp_path, max_connections_per_address=2) as ctl, fake_agent(ctl, tmp_path):
        assert ctl.hub is not None and ctl.limits is not None
        link = ctl.hub.links["node1"]
        probe_reader, probe = await connect(ctl)  # one of 127.0.0.1's two slots
        # The second slot is still free: the agent's link is not in the count.
        assert (await get_status(ctl))[0] == 200
        assert await read_until_closed(probe_reader, 5 * HEADER_TIMEOUT) == b""
        probe.close()
        assert ctl.hub.links.get("node1") is link
        limits = ctl.limits
        await wait_for(lambda: limits.total == 0, 5, message="only the agent link left")
        assert limits.per_address == {}


async def test_websocket_endpoints_get_the_header_timer_too(tmp_path: Path) -> None:
    """Half a websocket handshake to the agent or console endpoint is closed like any other."""
    async with cloud(tmp_path) as ctl:
        conns = []
        for path in ("/agent", "/console/websockify"):
            reader, writer = await connect(ctl)
            writer.write(  # ... and never the rest of the headers
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n".encode()
            )
            conns.append((reader, writer))
        for reader, writer in conns:
            assert await read_until_closed(reader, 5 * HEADER_TIMEOUT) == b""
            writer.close()


async def test_tls_handshake_gets_the_header_timeout(tmp_path: Path) -> None:
    """On an HTTPS port a client that never sends its TLS hello is closed the same way."""
    port = free_port()
    settings = {"listen": f"127.0.0.1:{port}", "public_url": f"https://127.0.0.1:{port}"}
    async with cloud(tmp_path, **settings) as ctl:
        assert ctl.config.tls_enabled
        reader, writer = await connect(ctl)  # TCP only: no ClientHello ever
        assert await read_until_closed(reader, 5 * HEADER_TIMEOUT) == b""
        writer.close()


async def test_malformed_request_is_one_warning_not_a_traceback(
    tmp_path: Path, caplog: Any
) -> None:
    """A header with a control character gets aiohttp's 400; the log says so in one WARNING
    line instead of an ERROR with a traceback (a fuzzer or a port scanner fills no log)."""
    async with cloud(tmp_path) as ctl:
        caplog.set_level("INFO", logger="aiohttp.server")
        reader, writer = await connect(ctl)
        writer.write(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n")
        await writer.drain()
        answer = await read_until_closed(reader, 5)
        writer.close()
        assert answer.split(b" ")[1] == b"400", answer[:80]
        records = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert records, "the malformed request was not logged"
        assert all(r.exc_info is None and r.levelname == "WARNING" for r in records), [
            (r.levelname, r.getMessage()) for r in records
        ]
        assert "malformed HTTP request from 127.0.0.1" in records[0].getMessage()
