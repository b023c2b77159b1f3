"""The raw tunnel handshake (`Upgrade: tcp`): the sans-I/O core and the agent's dial."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from mininova.relay import UpgradeRefused, dial_raw_tunnel
from mininova.relay.upgrade import (
    check_switched,
    is_raw_upgrade,
    parse_response_head,
    request_head,
    split_head,
)

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"


def test_request_head() -> None:
    head = request_head("ctl:8780", "/agent/tunnel/x", {"Authorization": "Bearer c"})
    assert head.startswith(b"GET /agent/tunnel/x HTTP/1.1\r\nHost: ctl:8780\r\n")
    assert b"\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n" in head
    assert head.endswith(b"Authorization: Bearer c\r\n\r\n")
    with pytest.raises(ValueError):
        request_head("ctl", "/x", {"X": "a\r\nInjected: 1"})


def test_split_and_parse() -> None:
    assert split_head(b"HTTP/1.1 101 Switching") is None
    head, rest = split_head(SWITCH + b"tail") or (b"", b"")
    assert rest == b"tail"
    response = parse_response_head(head)
    assert (response.status, response.reason) == (101, "Switching Protocols")
    check_switched(response)
    with pytest.raises(ValueError):
        split_head(b"x" * 70000)
    with pytest.raises(ValueError):
        parse_response_head(b"SSH-2.0-OpenSSH")


def test_refusals_carry_the_json_message() -> None:
    head = parse_response_head(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 9")
    with pytest.raises(UpgradeRefused) as info:
        check_switched(head, b'{"error": {"message": "Invalid tunnel token."}}')
    assert info.value.status == 401 and info.value.message == "Invalid tunnel token."
    ws = parse_response_head(b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\nUpgrade: websocket")
    with pytest.raises(UpgradeRefused):
        check_switched(ws)


def test_is_raw_upgrade() -> None:
    assert is_raw_upgrade("keep-alive, Upgrade", "TCP")
    assert not is_raw_upgrade("Upgrade", "websocket")
    assert not is_raw_upgrade("keep-alive", "tcp")


async def _server(answer: bytes) -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        await writer.drain()
        if answer.startswith(b"HTTP/1.1 101"):
            while data := await reader.read(65536):  # echo
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


async def test_dial_then_bare_bytes_both_ways() -> None:
    from mininova.relay.upgrade import KEEPALIVE_CHUNK, chunk_header

    server, port, seen = await _server(SWITCH + KEEPALIVE_CHUNK + chunk_header(5) + b"early")
    async with server:
        end = await dial_raw_tunnel(
            f"ws://127.0.0.1:{port}/agent/tunnel/abc?x=1", {"X-Cap": "t"}, "controller"
        )
        assert seen[0].startswith(b"GET /agent/tunnel/abc?x=1 HTTP/1.1\r\n")
        assert b"X-Cap: t\r\n" in seen[0]
        assert await end.read() == b"early"  # bytes right behind the 101
        await end.write(b"ping")  # echoed: header and payload
        assert bytes(await end.read()) == b"ping"
        await end.close()


async def test_dial_refused() -> None:
    body = b'{"error": {"code": 404, "message": "No such TCP tunnel."}}'
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server, port, _ = await _server(answer)
    async with server:
        with pytest.raises(UpgradeRefused, match="No such TCP tunnel"):
            await dial_raw_tunnel(f"http://127.0.0.1:{port}/agent/tcp-tunnel/x", {}, "c")


def test_chunk_decoder_splits_without_copies() -> None:
    from mininova.relay.upgrade import KEEPALIVE_CHUNK, ChunkDecoder, chunk_header

    stream = chunk_header(5) + b"hello" + KEEPALIVE_CHUNK + chunk_header(3) + b"abc"
    for cut in range(len(stream) + 1):
        decoder = ChunkDecoder()
        out = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert b"".join(bytes(p) for p in out) == b"helloabc", cut
    whole = b"x" * 100
    decoder = ChunkDecoder()
    assert decoder.feed(chunk_header(200)) == []
    assert decoder.feed(whole)[0] is whole  # a read inside one chunk is passed as is
    with pytest.raises(ValueError):
        ChunkDecoder().feed(chunk_header(1 << 30))


async def test_dial_over_tls_verifies_the_pinned_ca(tmp_path: Path) -> None:
    import ssl

    from mininova.relay.upgrade import chunk_header
    from mininova.tls import client_ssl_context, ensure_server_tls, server_ssl_context

    tls = ensure_server_tls(tmp_path / "tls", ["127.0.0.1"])
    other = ensure_server_tls(tmp_path / "other", ["127.0.0.1"])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(SWITCH + chunk_header(2) + b"ok")
            await writer.drain()
            await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ssl_context(tls))
    port = server.sockets[0].getsockname()[1]
    async with server:
        pinned = client_ssl_context(tls.ca_file.read_bytes())
        end = await dial_raw_tunnel(f"wss://127.0.0.1:{port}/t", {}, "c", ssl=pinned)
        assert bytes(await end.read()) == b"ok"
        await end.close()
        wrong = client_ssl_context(other.ca_file.read_bytes())
        with pytest.raises(ssl.SSLCertVerificationError):
            await dial_raw_tunnel(f"https://127.0.0.1:{port}/t", {}, "c", ssl=wrong)
