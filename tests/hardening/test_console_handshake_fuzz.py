"""Property tests of the console handshake: the browser websocket, the agent's tunnel
dial-in and the raw tunnel's sans-I/O parsing (`mininova.relay.upgrade`).

Generated bad tokens, paths, subprotocol and upgrade headers (bytes that are not UTF-8
included), garbage before and inside the RFB handshake and abrupt closes: the proxy answers
with a clear refusal (a 4xx status or a websocket close), never a 5xx or a traceback, and no
console session or per-instance slot stays counted once a connection is gone. The agent's
end of the tunnel turns any response to its `Upgrade: tcp` request into `ValueError` or
`UpgradeRefused`, and the chunk decoder gives back exactly the payloads, however the stream
is split.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mininova.relay.upgrade import (
    MAX_CHUNK,
    ChunkDecoder,
    UpgradeRefused,
    check_switched,
    chunk_header,
    parse_response_head,
    split_head,
)
from tests.console.conftest import ConsoleEnv
from tests.console.conftest import env as env  # the console fixture: controller + agent
from tests.hardening.fuzzing import CI, collect
from tests.kit.wait import wait_for

# -- the agent's end: parsing the controller's answer (sans I/O) -------------------------------

heads = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda status, reason, headers: (
            f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1", "replace")
            + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        ),
        st.one_of(st.integers(0, 999).map(str), st.text(max_size=5)),
        st.text(max_size=10),
        st.lists(
            st.tuples(
                st.sampled_from([b"Connection", b"Upgrade", b"Content-Length", b"X"])
                | st.binary(max_size=8),
                st.sampled_from([b"Upgrade", b"tcp", b"websocket", b"-1", b"9" * 5000])
                | st.binary(max_size=8),
            ),
            max_size=4,
        ),
    ),
)
bodies = st.one_of(
    st.binary(max_size=100),
    st.sampled_from([b'{"error": "x"}', b"[]", b'{"error": {"message": 5}}', b"null"]),
    st.integers(900, 60_000).map(lambda n: b"[" * n + b"]" * n),
)


@CI
@given(head=heads, body=bodies)
@example(head=b"HTTP/1.1 401 Unauthorized", body=b"[" * 50_000 + b"]" * 50_000)  # RecursionError
@example(head=b"HTTP/1.1 \xb2 x", body=b"")  # a latin-1 digit that int() refuses
def test_agent_end_refuses_any_bad_answer_cleanly(head: bytes, body: bytes) -> None:
    """The agent's dial-in sees ValueError or UpgradeRefused for anything but the 101."""
    try:
        split = split_head(head + b"\r\n\r\n" + body)
        assert split is not None
        response = parse_response_head(split[0])
        check_switched(response, split[1])
    except UpgradeRefused as exc:
        assert exc.status != 101 or "not tcp" in exc.message
    except ValueError:
        pass
    else:
        assert response.status == 101


@CI
@given(
    payloads=st.lists(st.binary(max_size=300), max_size=6),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_chunk_decoder_reassembles_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(chunk_header(len(p)) + p for p in payloads)
    decoder = ChunkDecoder()
    out = bytearray()
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        for piece in decoder.feed(stream[start:cut]):
            out += piece
        start = max(start, cut)
    assert bytes(out) == b"".join(payloads)


@CI
@given(garbage=st.binary(min_size=4, max_size=64))
def test_chunk_decoder_refuses_only_with_value_error(garbage: bytes) -> None:
    try:
        ChunkDecoder().feed(garbage)
    except ValueError:
        assert int.from_bytes(garbage[:4], "big") > MAX_CHUNK or len(garbage) > 4


# -- the proxy: generated handshakes over a real socket ------------------------------------------

WS_KEY = base64.b64encode(b"0123456789abcdef").decode()
# Header octets HTTP allows (RFC 9110 field-value: VCHAR, obs-text, SP, HTAB), so bytes that
# are not UTF-8 but no control characters: a malformed request is aiohttp's to refuse (400).
junk_bytes = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(c for c in b if c == 9 or 0x21 <= c <= 0x7E or c >= 0x80) or b"x"
)
header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.encode),
    junk_bytes,
)


def _token_values(valid: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(valid),
        st.just(valid),
        st.just(valid),
        st.just(valid + "x"),
        st.text(max_size=30).map(quote),
        st.binary(max_size=20).map(lambda b: quote(b, safe="")),
        st.just("x" * 300),
        st.just(""),
    )


def requests_for(token: str, uuid: str) -> st.SearchStrategy[dict[str, Any]]:
    """A browser's (or anyone's) request for a console, mostly almost right."""
    return st.fixed_dictionaries(
        {
            "path": st.sampled_from(
                [
                    *["/console/websockify"] * 6,
                    "/console/info",
                    "/agent/tunnel/nope",
                    "/agent/tcp-tunnel/nope",
                    "/console/websockify/x",
                    "/console/%ff",
                ]
            ),
            "token": _token_values(token),
            "instance": st.sampled_from([None, None, uuid, "x", "%ff", "%00"]),
            "websocket": st.sampled_from([True, True, True, False]),
            "protocol": st.one_of(st.none(), st.just(b"binary"), header_values),
            "version": st.sampled_from([b"13"] * 4 + [b"8", b"x"]) | junk_bytes,
            "origin": st.sampled_from([None] * 4 + [b"null", b"http://evil.example"]) | junk_bytes,
            "auth": st.none() | header_values.map(lambda v: b"Bearer " + v),
            "capability": st.none() | header_values,
            "after": st.one_of(
                st.none(),
                st.binary(max_size=40),
                st.just(b"RFB 003.008\n"),  # the client's half of RFB's version handshake
            ),
        }
    )


# A browser's console handshake as the proxy expects it ("@TOKEN@"/"@UUID@" stand for the
# test's real token and server).
WELL_FORMED: dict[str, Any] = {
    "path": "/console/websockify",
    "token": "@TOKEN@",
    "instance": "@UUID@",
    "websocket": True,
    "protocol": b"binary",
    "version": b"13",
    "origin": None,
    "auth": None,
    "capability": None,
}


def raw_request(base_host: str, req: dict[str, Any]) -> bytes:
    query = f"token={req['token']}"
    if req["instance"] is not None:
        query += f"&instance={req['instance']}"
    lines = [f"GET {req['path']}?{query} HTTP/1.1".encode(), f"Host: {base_host}".encode()]
    if req["websocket"]:
        lines += [
            b"Connection: Upgrade",
            b"Upgrade: websocket",
            b"Sec-WebSocket-Version: " + req["version"],
            f"Sec-WebSocket-Key: {WS_KEY}".encode(),
        ]
    for name, value in (
        (b"Sec-WebSocket-Protocol", req["protocol"]),
        (b"Origin", req["origin"]),
        (b"Authorization", req["auth"]),
        (b"X-Mininova-Capability", req["capability"]),
    ):
        if value is not None:
            lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def masked_frame(payload: bytes, opcode: int = 2) -> bytes:
    """One client websocket frame (masked with a zero key)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + b"\0\0\0\0" + payload


async def exchange(base_host: str, port: int, req: dict[str, Any]) -> int:
    """Send one request (and what follows it); the response's status (0: no response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw_request(base_host, req))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        status = int(line.split()[1]) if line.startswith(b"HTTP/1.") else 0
        if status == 101 and req["after"] is not None:
            # garbage before or inside the RFB handshake, as frames and as raw bytes
            writer.write(masked_frame(req["after"]) + req["after"])
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        return status
    finally:
        writer.transport.abort()  # an abrupt close, whatever state the handshake is in


async def test_console_handshakes_are_refused_cleanly(
    env: ConsoleEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    proxy = env.controller.consoleproxy
    assert proxy is not None
    generated = await asyncio.to_thread(collect, requests_for("@TOKEN@", "@UUID@"), 60)
    # A good handshake followed by garbage before/inside RFB, then an abrupt close.
    generated += [{**WELL_FORMED, "after": after} for after in (None, b"\xff" * 40, b"RFB 003")]
    # found by an earlier draw: a dial-in whose headers are not UTF-8 was a 500
    generated.append(
        {
            **WELL_FORMED,
            "path": "/agent/tunnel/nope",
            "origin": b"null",
            "auth": b"Bearer \xbe\xa9\t1\xc7hOR",
            "capability": b"\x9e\xfa\x82U",
            "after": None,
        }
    )
    uuid = await env.server("vm1")
    token = await env.token(uuid)
    host, port = env.base.split("//")[1], int(env.base.rsplit(":", 1)[1])
    statuses: list[int] = []
    for req in generated:
        req = {
            **req,
            "token": req["token"].replace("@TOKEN@", token),
            "instance": req["instance"] and req["instance"].replace("@UUID@", uuid),
        }
        status = await exchange(host, port, req)
        statuses.append(status)
        assert status and status < 500, (status, req)
        await wait_for(
            lambda: not proxy.sessions and not proxy.per_instance,
            5,
            0.01,
            lambda: f"no console session counted: {proxy.sessions} {dict(proxy.per_instance)}",
        )
    assert 101 in statuses and 401 in statuses, "the examples reached both sides"
    # The console still works for a well-behaved browser afterwards.
    status, body, _ = await env.api.get(f"/console/info?token={token}", token=False)
    assert status == 200, body
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad][:5]


async def test_dialins_with_undecodable_headers_are_refused(env: ConsoleEnv) -> None:
    """A tunnel dial-in or agent link whose credential or tunnel token is not UTF-8 gets a
    401, not a 500."""
    host, port = env.base.split("//")[1], int(env.base.rsplit(":", 1)[1])
    for path, auth, capability in (
        ("/agent/tunnel/nope", b"Bearer mnh_\xff", b"x"),
        ("/agent/tunnel/nope", b"Bearer \xc3", None),
        ("/agent/tunnel/nope", None, b"\xff"),
        ("/agent", b"Bearer mnh_\xff", None),
        ("/agent", b"Bearer mnj_\xe9.x", None),
    ):
        req = {
            "path": path,
            "token": "t",
            "instance": None,
            "websocket": path == "/agent",
            "protocol": None,
            "version": b"13",
            "origin": None,
            "auth": auth,
            "capability": capability,
            "after": None,
        }
        assert await exchange(host, port, req) == 401


async def _close_code(reader: asyncio.StreamReader) -> int:
    """Read server websocket frames (unmasked) until a close frame; its code."""
    while True:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 8:
            return struct.unpack("!H", payload[:2])[0]


async def test_oversized_browser_message_closes_with_1009(env: ConsoleEnv) -> None:
    """A browser frame over the proxy's 16 MiB limit (announced in its header) closes the
    console with 1009 (message too big), and no session stays counted."""
    proxy = env.controller.consoleproxy
    assert proxy is not None
    uuid = await env.server("vm1")
    token = await env.token(uuid)
    host, port = env.base.split("//")[1], int(env.base.rsplit(":", 1)[1])
    req = {**WELL_FORMED, "token": token, "instance": uuid}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw_request(host, req))
        assert (await reader.readline()).startswith(b"HTTP/1.1 101")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"\x82\xff" + struct.pack("!Q", 17 << 20) + b"\0\0\0\0" + b"x" * 1024)
        assert await asyncio.wait_for(_close_code(reader), 10) == 1009
    finally:
        writer.transport.abort()
    await wait_for(lambda: not proxy.sessions and not proxy.per_instance, 5, 0.01, "no session")
