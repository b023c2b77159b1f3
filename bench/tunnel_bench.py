#!/usr/bin/env python3
"""Agent tunnel benchmark, processes as deployed: console and TCP tunnel vs websockify vs TCP.

Every party is its own process, all on loopback:

  source      a TCP server standing in for the guest port / VNC server (sink, streamer, echo)
  serve       `python -m mininova.cli serve` (the controller, console proxy, TCP tunnels)
  agent       `python -m mininova.cli agent --driver fake`, started through this script's
              `--role agent` wrapper, which only points the fake driver's console endpoint at
              the source (the fake VNC server otherwise) and sets the fake guest address to
              127.0.0.1 (MININOVA_AGENT_FAKE_GUEST_ADDRESS); then it runs the real CLI
  websockify  the `websockify` executable of this venv, `127.0.0.1:W 127.0.0.1:<source>`
  tcp-relay   a minimal asyncio TCP relay (this script's `--role relay`)
  client      this process: one minimal websocket client (`WsConn`, this script's own, on
              asyncio's buffered protocol), used identically for the three websocket paths;
              a plain asyncio protocol for the TCP relay

Paths measured with the same client code and the same source:

  console     ws /console/websockify?token=T -> serve -> agent data ws -> agent -> source
  tcp-tunnel  ws /tunnel/tcp/<server>?port=P  -> serve -> agent data ws -> agent -> source
  websockify  ws -> websockify -> source
  tcp-relay   TCP -> relay -> source

For each: download (source -> client) and upload (client -> source) of `--mib` MiB, `--runs`
times, median MB/s; then `--rounds` round trips of a 32-byte message against the echo mode,
median and p99. The table gives ratios against websockify from the same run.

    .venv/bin/python bench/tunnel_bench.py [--mib 128] [--runs 3] [--rounds 2000] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCK = 256 * 1024  # what the source and the client write at a time
PING = b"p" * 32
HEADER = struct.Struct("!cQ")  # mode, byte count
LIMIT = 1 << 20  # StreamReader buffer of the bench's own TCP ends (the default 64 KiB is slow)

# -- the source (its own process) -------------------------------------------------------------


async def _source_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Modes: D n -> send n bytes; U n -> read n bytes, answer b"K"; E -> echo."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        mode, count = HEADER.unpack(await reader.readexactly(HEADER.size))
        if mode == b"D":
            block = b"\x5a" * BLOCK
            while count > 0:
                writer.write(block[: min(count, BLOCK)])
                count -= min(count, BLOCK)
                await writer.drain()
            await reader.read()  # the client closes
        elif mode == b"U":
            while count > 0:
                data = await reader.read(min(count, 1 << 20))
                if not data:
                    return
                count -= len(data)
            writer.write(b"K")
            await writer.drain()
            await reader.read()
        elif mode == b"E":
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


class _RelaySide(asyncio.Protocol):
    """One side of the TCP relay: what it receives is written to the other side's transport
    as is; a full outgoing buffer pauses reading on the other side (backpressure)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.peer: _RelaySide | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.pending.append(data)
        else:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()


async def _serve_relay(target: int, port: int) -> None:
    loop = asyncio.get_running_loop()

    class Front(_RelaySide):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.pause_reading()
            asyncio.ensure_future(self.dial())

        async def dial(self) -> None:
            try:
                _, back = await loop.create_connection(_RelaySide, "127.0.0.1", target)
            except OSError:
                self.transport.close()
                return
            back.peer, self.peer = self, back
            for data in self.pending:
                back.transport.write(data)
            self.transport.resume_reading()

    server = await loop.create_server(Front, "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


async def _serve_forever(handler: Any, port: int) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", port, limit=LIMIT)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def _run_agent(console_port: int, argv: list[str]) -> None:
    """The real `mininova agent` CLI with the fake driver's console endpoint at the source."""
    from mininova.cli import main
    from mininova.virt.driver import ConsoleEndpoint
    from mininova.virt.fake import FakeDriver

    async def endpoint(self: FakeDriver, uuid: str) -> ConsoleEndpoint:
        self._get(uuid)
        return ConsoleEndpoint(host="127.0.0.1", port=console_port)

    FakeDriver.console_endpoint = endpoint  # type: ignore[method-assign]
    main(argv, prog_name="mininova")


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g}s")


class Procs:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- the client ----------------------------------------------------------------------------------


class WsConn(asyncio.BufferedProtocol):
    """The bench's websocket client, the same for the three websocket paths: a minimal
    RFC 6455 client on asyncio's buffered protocol (the socket is read straight into one
    1 MiB buffer, no per-read bytes object).

    It sends binary frames, masked as a client must, with one random key per connection
    (the masked form of the last payload is kept: the upload sends the same 256 KiB block
    again and again); it reads the server's frames exactly (headers split across reads
    included), answers pings, and in `discard` mode only counts data payload bytes without
    copying them (the download). No compression, no fragmentation on send."""

    BUF = 1 << 20

    def __init__(self) -> None:
        self.transport: Any = None
        self.buf = bytearray(self.BUF)
        self.view = memoryview(self.buf)
        self.filled = 0  # bytes at the start of buf not parsed yet (a partial header)
        self.handshake: bytes | None = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.remaining = 0  # payload bytes left in the current frame
        self.opcode = 0
        self.control = bytearray()
        self.chunks: list[bytes] = []
        self.counted = 0
        self.discarding = False
        self.eof = False
        self.waiter: asyncio.Future[None] | None = None
        self.paused: asyncio.Future[None] | None = None
        self.mask = os.urandom(4)
        self.mask_int = int.from_bytes(self.mask * (BLOCK // 4), "little")
        self.last: tuple[bytes, bytes] | None = None

    # -- asyncio ----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        end = self.filled + nbytes
        pos = 0
        if self.handshake is not None:
            self.handshake += bytes(self.view[:end])
            head, sep, rest = self.handshake.partition(b"\r\n\r\n")
            if not sep:
                self.filled = 0
                return
            self.handshake = None
            status = head.split(b"\r\n", 1)[0]
            if status.split(b" ")[1:2] != [b"101"]:
                self.opened.set_exception(ConnectionError(f"handshake: {status.decode()}"))
                return
            self.opened.set_result(None)
            self.buf[: len(rest)] = rest
            end = len(rest)
        view = self.view
        while pos < end:
            if self.remaining:
                take = min(self.remaining, end - pos)
                if self.opcode == 2 and self.discarding:
                    self.counted += take
                elif self.opcode in (0, 1, 2):
                    self.chunks.append(bytes(view[pos : pos + take]))
                else:
                    self.control += view[pos : pos + take]
                pos += take
                self.remaining -= take
                if not self.remaining and self.opcode >= 8:
                    self._control_frame()
                continue
            if end - pos < 2:
                break
            b0, b1 = view[pos], view[pos + 1]
            if b1 & 0x80:
                raise ConnectionError("masked frame from the server")
            length, header = b1 & 0x7F, 2
            if length == 126:
                if end - pos < 4:
                    break
                length, header = int.from_bytes(view[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, header = int.from_bytes(view[pos + 2 : pos + 10], "big"), 10
            pos += header
            opcode = b0 & 0x0F
            if opcode != 0:  # a continuation keeps its message's opcode
                self.opcode = opcode
            self.remaining = length
            if opcode >= 8:
                self.control = bytearray()
                if not length:
                    self._control_frame()
        self.filled = end - pos
        if self.filled:
            self.buf[: self.filled] = view[pos:end]
        self._wake()

    def _control_frame(self) -> None:
        if self.opcode == 9:  # ping -> pong
            self._send_frame(0xA, bytes(self.control))
        elif self.opcode == 8:
            self.eof = True
        self.opcode = 2

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def pause_writing(self) -> None:
        self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.resume_writing()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        self._wake()

    # -- frames ----------------------------------------------------------------------

    def _masked(self, data: bytes) -> bytes:
        if self.last is not None and self.last[0] is data:
            return self.last[1]
        n = len(data)
        key = self.mask_int if n == BLOCK else int.from_bytes(self.mask * (n // 4 + 1), "little")
        masked = (int.from_bytes(data, "little") ^ (key & ((1 << (8 * n)) - 1))).to_bytes(
            n, "little"
        )
        self.last = (data, masked)
        return masked

    def _send_frame(self, opcode: int, data: bytes) -> None:
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        self.transport.write(head + self.mask + self._masked(data))

    # -- the bench's connection interface ---------------------------------------------------

    async def _wait(self) -> None:
        if self.eof:
            raise ConnectionError("websocket closed")
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def send(self, data: bytes) -> None:
        self._send_frame(2, data)
        if self.paused is not None:
            await self.paused

    async def recv(self) -> bytes:
        while not self.chunks:
            await self._wait()
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        return data

    async def discard(self, nbytes: int) -> None:
        """Wait until `nbytes` data payload bytes arrived, counting them only."""
        self.discarding = True
        self.counted += sum(len(c) for c in self.chunks)
        self.chunks.clear()
        while self.counted < nbytes:
            await self._wait()
        self.discarding = False
        self.counted -= nbytes

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.write(b"\x88\x82" + self.mask + self._xor2(b"\x03\xe8"))
        self.transport.close()

    def _xor2(self, data: bytes) -> bytes:
        return bytes(b ^ self.mask[i] for i, b in enumerate(data))


class TcpConn(asyncio.Protocol):
    """The TCP client: received chunks are queued as the transport made them (no
    StreamReader copies), so that the TCP reference is not slowed down by its client."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.chunks: list[bytes] = []
        self.eof = False
        self.waiter: asyncio.Future[None] | None = None
        self.paused: asyncio.Future[None] | None = None
        self.discarding = False
        self.counted = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.paused is not None and not self.paused.done():
            self.paused.set_result(None)
        self.paused = None

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            self.counted += len(data)
        else:
            self.chunks.append(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.resume_writing()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def send(self, data: bytes) -> None:
        self.transport.write(data)
        if self.paused is not None:  # above the transport's high-water mark
            await self.paused

    async def recv(self) -> bytes:
        while not self.chunks:
            if self.eof:
                raise ConnectionError("closed")
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        return data

    async def discard(self, nbytes: int) -> None:
        """Wait until `nbytes` bytes arrived, counting them only (as `WsConn.discard`)."""
        self.discarding = True
        self.counted += sum(len(c) for c in self.chunks)
        self.chunks.clear()
        while self.counted < nbytes:
            if self.eof:
                raise ConnectionError("closed")
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        self.discarding = False
        self.counted -= nbytes

    async def close(self) -> None:
        self.transport.close()


async def ws_connect(url: str, headers: dict[str, str] | None = None) -> WsConn:
    """Open the bench's websocket (`WsConn`) to a ws:// URL."""
    import base64
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(WsConn, parts.hostname, parts.port or 80)
    key = base64.b64encode(os.urandom(16)).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Protocol: binary",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    conn.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await conn.opened
    except BaseException:
        conn.transport.close()
        raise
    return conn


Connect = Callable[[], Awaitable[Any]]


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system, with reaped children: websockify forks one per
    connection) the processes `pids` used so far, from /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


async def reaped(pids: list[int], timeout: float = 3.0) -> None:
    """Wait until these processes' children exited and were reaped (websockify's handler of
    the connection that just closed): their CPU then counts in the parent's cutime/cstime."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        while time.monotonic() < deadline:
            try:
                if not path.read_text().split():
                    break
            except OSError:
                break
            await asyncio.sleep(0.02)


async def download(connect: Connect, nbytes: int) -> float:
    conn = await connect()
    try:
        start = time.perf_counter()
        await conn.send(HEADER.pack(b"D", nbytes))
        await conn.discard(nbytes)
        return nbytes / (time.perf_counter() - start) / 1e6
    finally:
        await conn.close()


async def upload(connect: Connect, nbytes: int) -> float:
    conn = await connect()
    try:
        block = b"\xa5" * BLOCK
        start = time.perf_counter()
        await conn.send(HEADER.pack(b"U", nbytes))
        left = nbytes
        while left > 0:
            await conn.send(block[: min(left, BLOCK)])
            left -= min(left, BLOCK)
        if await conn.recv() != b"K":
            raise RuntimeError("the source did not acknowledge the upload")
        return nbytes / (time.perf_counter() - start) / 1e6
    finally:
        await conn.close()


async def round_trips(connect: Connect, rounds: int) -> tuple[float, float]:
    conn = await connect()
    try:
        await conn.send(HEADER.pack(b"E", 0))
        samples = []
        for i in range(rounds + 50):
            start = time.perf_counter()
            await conn.send(PING)
            got = 0
            while got < len(PING):
                got += len(await conn.recv())
            if i >= 50:  # warm-up
                samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]
    finally:
        await conn.close()


# -- the cloud ---------------------------------------------------------------------------------


async def boot_server(base: str, username: str, password: str) -> tuple[str, str]:
    """An admin token and an ACTIVE server on the fake agent (networks none: the agent's fake
    guest address 127.0.0.1 is its fixed IP)."""
    import aiohttp

    from bench.boot_bench import Api

    async with aiohttp.ClientSession() as s:
        api = Api(s, base)
        await api.login(password, user=username)
        image = await api.upload_image(1024)
        await api.wait_hosts_up(1)
        _, server = await api.boot("bench", image, poll=0.05, timeout=15)
    if server["status"] != "ACTIVE":
        raise RuntimeError(f"bench server {server['id']} is {server['status']}, not ACTIVE")
    return api.token, server["id"]


async def allow_port(base: str, token: str, uuid: str, port: int) -> None:
    """An ingress rule for `port` in the server's security groups (a TCP tunnel needs one)."""
    import aiohttp

    from bench.boot_bench import Api

    async with aiohttp.ClientSession() as s:
        api = Api(s, base)
        api.token = token
        legacy = {"headers": {"OpenStack-API-Version": "compute 2.1"}}
        server = await api.call("GET", f"/compute/v2.1/servers/{uuid}", (200,), **legacy)
        names = {g["name"] for g in server["server"].get("security_groups", [])}
        listed = await api.call("GET", "/compute/v2.1/os-security-groups", (200, 404), **legacy)
        if listed is None or "security_groups" not in listed:
            return  # a mininova without security groups
        for group in listed["security_groups"]:
            if group["name"] in (names or {"default"}):
                rule = {
                    "parent_group_id": group["id"],
                    "ip_protocol": "tcp",
                    "from_port": port,
                    "to_port": port,
                }
                await api.call(
                    "POST",
                    "/compute/v2.1/os-security-group-rules",
                    (200,),
                    json={"security_group_rule": rule},
                    **legacy,
                )


async def console_token(base: str, token: str, uuid: str) -> str:
    from urllib.parse import parse_qs, urlparse

    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{base}/compute/v2.1/servers/{uuid}/remote-consoles",
            headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.6"},
            json={"remote_console": {"protocol": "vnc", "type": "novnc"}},
        ) as r:
            url = (await r.json())["remote_console"]["url"]
    return parse_qs(urlparse(url).query)["token"][0]


# -- main ----------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    import re

    procs = Procs(workdir)
    me = [sys.executable, str(Path(__file__).resolve())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update({"HOME": str(workdir), "MININOVA_AGENT_FAKE_BOOT_SECONDS": "0.05"})
    source, relay, ws_port, api = free_port(), free_port(), free_port(), free_port()
    try:
        procs.start("source", [*me, "--role", "source", "--port", str(source)])
        procs.start(
            "relay", [*me, "--role", "relay", "--port", str(relay), "--target", str(source)]
        )
        websockify = shutil.which("websockify", path=str(Path(sys.executable).parent))
        if websockify is None:
            raise SystemExit("websockify not found in the venv: pip install websockify")
        procs.start("websockify", [websockify, f"127.0.0.1:{ws_port}", f"127.0.0.1:{source}"])
        procs.start(
            "serve",
            [
                sys.executable,
                "-m",
                "mininova.cli",
                "serve",
                "--data-dir",
                str(workdir / "data"),
                "--listen",
                f"127.0.0.1:{api}",
            ],
            env,
        )
        for name, port in (("source", source), ("relay", relay), ("websockify", ws_port)):
            wait_port(port, procs.procs[name], name)
        wait_port(api, procs.procs["serve"], "serve", 60)
        log = workdir / "serve.log"
        deadline = time.monotonic() + 30
        while not re.search(r"--token (\S+)", log.read_text()):
            if time.monotonic() > deadline:
                raise RuntimeError("serve printed no join token")
            await asyncio.sleep(0.1)
        join = re.findall(r"--token (\S+)", log.read_text())[-1]
        password = re.search(  # type: ignore[union-attr]
            r"password=(\S+)", (workdir / "data" / "admin-credentials").read_text()
        ).group(1)
        base = f"http://127.0.0.1:{api}"
        procs.start(
            "agent",
            [
                *me,
                "--role",
                "agent",
                "--port",
                str(source),
                "--",
                "agent",
                "--controller",
                base,
                "--token",
                join,
                "--driver",
                "fake",
                "--host",
                "bench-node",
                "--data-dir",
                str(workdir / "agent"),
            ],
            {**env, "MININOVA_AGENT_FAKE_GUEST_ADDRESS": "127.0.0.1"},
        )
        token, uuid = await boot_server(base, "admin", password)
        await allow_port(base, token, uuid, source)
        ws_base = base.replace("http://", "ws://")

        async def console() -> WsConn:
            ticket = await console_token(base, token, uuid)
            return await ws_connect(f"{ws_base}/console/websockify?token={ticket}")

        async def tcp_tunnel() -> WsConn:
            return await ws_connect(
                f"{ws_base}/tunnel/tcp/{uuid}?port={source}", {"X-Auth-Token": token}
            )

        async def tcp_relay() -> TcpConn:
            loop = asyncio.get_running_loop()
            return (await loop.create_connection(TcpConn, "127.0.0.1", relay))[1]

        paths: dict[str, Connect] = {
            "console": console,
            "tcp-tunnel": tcp_tunnel,
            "websockify": lambda: ws_connect(f"ws://127.0.0.1:{ws_port}/"),
            "tcp-relay": tcp_relay,
        }
        if args.paths:
            paths = {k: v for k, v in paths.items() if k in args.paths.split(",")}
        print(
            "pids: "
            + ", ".join(f"{n} {procs.pid(n)}" for n in ("serve", "agent", "websockify", "relay"))
            + f", client {os.getpid()}",
            flush=True,
        )
        nbytes = args.mib * 1024 * 1024
        pids = [os.getpid(), *(p.pid for p in procs.procs.values())]
        down: dict[str, list[float]] = {name: [] for name in paths}
        up: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [0.0, 0.0] for name in paths}
        names = ["client", *procs.procs]
        per: dict[str, dict[str, float]] = {name: dict.fromkeys(names, 0.0) for name in paths}
        for connect in paths.values():
            await download(connect, 4 << 20)  # warm-up
        # Interleaved (one run of each path in turn) so that slow phases of a noisy machine
        # spread over all paths instead of hitting one.
        for _ in range(args.runs):
            for name, connect in paths.items():
                if args.only == "up":
                    down[name].append(0.0)
                    continue
                before = cpu_seconds(pids)
                each = [cpu_seconds([pid]) for pid in pids]
                down[name].append(await download(connect, nbytes))
                await reaped(pids)
                cpu[name][0] += cpu_seconds(pids) - before
                for proc, pid, was in zip(names, pids, each, strict=True):
                    per[name][proc] += cpu_seconds([pid]) - was
            for name, connect in paths.items():
                if args.only == "down":
                    up[name].append(0.0)
                    continue
                before = cpu_seconds(pids)
                up[name].append(await upload(connect, nbytes))
                await reaped(pids)
                cpu[name][1] += cpu_seconds(pids) - before
        results: dict[str, dict[str, float]] = {}
        for name, connect in paths.items():
            med, p99 = await round_trips(connect, args.rounds)
            gb = nbytes * args.runs / 1e9
            results[name] = {
                "down": statistics.median(down[name]),
                "up": statistics.median(up[name]),
                "rtt": med,
                "p99": p99,
                "cpu_down": cpu[name][0] / gb,
                "cpu_up": cpu[name][1] / gb,
            }
            detail = ", ".join(f"{k} {v / gb:.1f}" for k, v in per[name].items() if v > 0)
            print(
                f"  {name}: download CPU s/GB by process: {detail}\n"
                f"  {name}: down {' '.join(f'{x:.0f}' for x in down[name])} MB/s, "
                f"up {' '.join(f'{x:.0f}' for x in up[name])} MB/s, RTT {med:.0f}/{p99:.0f} us",
                flush=True,
            )
    finally:
        procs.stop_all()

    print(
        f"\nagent tunnel, loopback, {os.cpu_count()} CPUs, separate processes; "
        f"{args.mib} MiB x {args.runs} runs each way (median), "
        f"{args.rounds} round trips of {len(PING)} B\n"
    )
    ref = results.get("websockify")
    head = (
        f"{'path':<11} {'down MB/s':>10} {'up MB/s':>9} {'RTT p50':>9} {'RTT p99':>9}"
        f" {'CPU s/GB down':>14} {'up':>5}"
    )
    print(head + ("   vs websockify: down / up / RTT p50" if ref else ""))
    for name, r in results.items():
        line = (
            f"{name:<11} {r['down']:>10.0f} {r['up']:>9.0f} "
            f"{r['rtt']:>7.0f}us {r['p99']:>7.0f}us {r['cpu_down']:>14.2f} {r['cpu_up']:>5.2f}"
        )
        if ref:
            line += (
                f"   {r['down'] / ref['down']:.2f}x / {r['up'] / ref['up']:.2f}x"
                f" / {r['rtt'] / ref['rtt']:.2f}x"
            )
        print(line)
    if ref:
        print("\n(target: tunnels >= 1.5x websockify's throughput, RTT p50 ratio < 1.00x)")
    print(
        "CPU s/GB: CPU time of the bench's processes (client, source, serve, agent, websockify,"
        " tcp-relay) per GB moved, from /proc/<pid>/stat; the machine has other load too"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="MiB per bulk run")
    parser.add_argument("--runs", type=int, default=3, help="bulk runs per direction")
    parser.add_argument("--rounds", type=int, default=2000, help="round trips")
    parser.add_argument("--paths", default="", help="comma-separated subset of the paths")
    parser.add_argument("--only", choices=("down", "up"), help="one direction (profiling)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--role", default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=int, default=0, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.role == "source":
        asyncio.run(_serve_forever(_source_client, args.port))
    elif args.role == "relay":
        asyncio.run(_serve_relay(args.target, args.port))
    elif args.role == "agent":
        _run_agent(args.port, [a for a in rest if a != "--"])
    else:
        workdir = Path(tempfile.mkdtemp(prefix="mininova-tunnel-bench-"))
        try:
            asyncio.run(bench(args, workdir))
        except KeyboardInterrupt:
            pass
        finally:
            if args.keep:
                print(f"work dir kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
