#!/usr/bin/env python3
"""Console data path benchmark: mininova (proxy + agent tunnel) vs websockify vs raw TCP.

All on loopback, in one run, against the same VNC-like TCP source:

* throughput: the source streams 64 KiB blocks as fast as the path takes them (like a guest
  sending framebuffer updates); the client counts bytes for a few seconds -> MB/s
* latency: the source echoes; the client does small request/response round trips -> median
  and p99 round-trip time

Paths:
  mininova    browser-side websocket -> `mininova serve` console proxy -> agent data websocket
              -> agent tunnel -> TCP source   (an in-process controller and fake-driver agent)
  websockify  websocket -> websockify (subprocess) -> TCP source
  tcp-relay   TCP -> a plain asyncio TCP relay -> TCP source   (the ceiling)

    .venv/bin/python bench/console_bench.py [--seconds 3] [--rounds 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot_bench import Api  # noqa: E402

BLOCK = b"\x5a" * 65536
PING = b"p" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the VNC-like source --------------------------------------------------------------------


async def source_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """First byte selects the mode: b"T" stream forever, b"E" echo."""
    try:
        mode = await reader.readexactly(1)
        if mode == b"T":
            while True:
                writer.write(BLOCK)
                await writer.drain()
        elif mode == b"E":
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


# -- clients ------------------------------------------------------------------------------


class WsClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession):
        self.ws, self.session = ws, session

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self) -> bytes:
        msg = await self.ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise ConnectionError(f"websocket ended: {msg.type.name} {msg.extra}")
        return msg.data

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


class TcpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> bytes:
        data = await self.reader.read(262144)
        if not data:
            raise ConnectionError("closed")
        return data

    async def close(self) -> None:
        self.writer.close()


async def ws_client(url: str) -> WsClient:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url, protocols=("binary",), max_msg_size=0, compress=0)
    return WsClient(ws, session)


# -- measurements -------------------------------------------------------------------------


async def throughput(connect: Any, seconds: float) -> float:
    client = await connect()
    try:
        await client.send(b"T")
        await client.recv()  # first bytes: the path is up
        total, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            total += len(await client.recv())
        return total / elapsed / 1e6
    finally:
        await client.close()


async def latency(connect: Any, rounds: int) -> tuple[float, float]:
    client = await connect()
    try:
        await client.send(b"E")
        samples = []
        for i in range(rounds + 20):
            start = time.perf_counter()
            await client.send(PING)
            got = 0
            while got < len(PING):
                got += len(await client.recv())
            if i >= 20:  # warm-up
                samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    finally:
        await client.close()


# -- paths --------------------------------------------------------------------------------


async def start_tcp_relay(target_port: int) -> tuple[asyncio.AbstractServer, int]:
    async def relay_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))

    server = await asyncio.start_server(relay_client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def start_mininova(source_port: int, workdir: Path) -> tuple[Any, Any]:
    """In-process controller + fake-driver agent whose guest console is the TCP source."""
    from mininova.agent import Agent
    from mininova.config import AgentConfig, ServeConfig
    from mininova.controller import Controller
    from mininova.virt.driver import ConsoleEndpoint
    from mininova.virt.fake import FakeDriver

    config = ServeConfig(data_dir=workdir / "data", listen=f"127.0.0.1:{free_port()}")
    ctl = Controller(config)
    await ctl.start()
    creds = ctl.credentials
    driver = FakeDriver(boot_seconds=0.01, op_seconds=0.001)

    async def endpoint(uuid: str) -> ConsoleEndpoint:
        return ConsoleEndpoint(host="127.0.0.1", port=source_port)

    driver.console_endpoint = endpoint  # type: ignore[method-assign]
    agent = Agent(
        AgentConfig(
            controller=config.base_url,
            token=ctl.join_token,
            host="bench-node",
            driver="fake",
            data_dir=workdir / "agent",
        ),
        driver,
    )
    agent_task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 10)

    base = config.base_url
    async with aiohttp.ClientSession() as s:
        api = Api(s, base)
        await api.login(creds.password, user=creds.username, project=creds.project)
        image = await api.upload_image(1024)
        _, server = await api.boot("bench", image, poll=0.05, timeout=10)
        if server["status"] != "ACTIVE":
            raise RuntimeError("bench server never became ACTIVE")
        uuid = server["id"]

    async def connect() -> WsClient:
        result = await ctl.bus.call("consoleauth", "authorize", instance_uuid=uuid)
        ws_base = base.replace("http://", "ws://")
        return await ws_client(f"{ws_base}/console/websockify?token={result['token']}")

    async def stop() -> None:
        agent_task.cancel()
        await asyncio.gather(agent_task, return_exceptions=True)
        from mininova.agent import tunnel

        await tunnel.close_all()
        await ctl.stop()

    return connect, stop


def start_websockify(source_port: int) -> tuple[subprocess.Popen, int] | None:
    exe = shutil.which("websockify", path=str(Path(sys.executable).parent)) or shutil.which(
        "websockify"
    )
    if exe is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [exe, f"127.0.0.1:{port}", f"127.0.0.1:{source_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    proc.kill()
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    parser.add_argument("--rounds", type=int, default=500, help="latency round trips")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    source = await asyncio.start_server(source_client, "127.0.0.1", 0)
    source_port = source.sockets[0].getsockname()[1]
    relay, relay_port = await start_tcp_relay(source_port)
    workdir = Path(tempfile.mkdtemp(prefix="mininova-bench-"))
    mininova_connect, mininova_stop = await start_mininova(source_port, workdir)
    ws = start_websockify(source_port)

    async def tcp_connect() -> TcpClient:
        return TcpClient(*await asyncio.open_connection("127.0.0.1", relay_port))

    paths: dict[str, Any] = {"tcp-relay": tcp_connect, "mininova": mininova_connect}
    if ws is not None:
        paths["websockify"] = lambda: ws_client(f"ws://127.0.0.1:{ws[1]}/")
    else:
        print("websockify not found: pip install websockify (part of the test extras)")

    results: dict[str, dict[str, float]] = {}
    try:
        for name, connect in paths.items():
            mbps = await throughput(connect, args.seconds)
            med, p99 = await latency(connect, args.rounds)
            results[name] = {"mbps": mbps, "median_us": med, "p99_us": p99}
    finally:
        await mininova_stop()
        if ws is not None:
            ws[0].terminate()
            ws[0].wait(5)
        relay.close()
        source.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\nconsole data path, loopback, {os.cpu_count()} CPUs, "
        f"{args.seconds:g}s throughput runs, {args.rounds} round trips of {len(PING)} B\n"
    )
    print(f"{'path':<12} {'MB/s':>10} {'RTT median':>12} {'RTT p99':>10}")
    for name, r in results.items():
        print(f"{name:<12} {r['mbps']:>10.1f} {r['median_us']:>10.0f}us {r['p99_us']:>8.0f}us")
    print()
    print("note: the client, the source, tcp-relay and the mininova controller + agent share this")
    print("process's one event loop; websockify runs in its own process (its own CPU).\n")
    m, t = results["mininova"], results["tcp-relay"]
    print(
        f"mininova / tcp-relay:   throughput {m['mbps'] / t['mbps']:.2f}x, "
        f"median RTT {m['median_us'] / t['median_us']:.2f}x"
    )
    if "websockify" in results:
        w = results["websockify"]
        print(
            f"mininova / websockify:  throughput {m['mbps'] / w['mbps']:.2f}x, "
            f"median RTT {m['median_us'] / w['median_us']:.2f}x"
        )
        print(
            f"websockify / tcp-relay: throughput {w['mbps'] / t['mbps']:.2f}x, "
            f"median RTT {w['median_us'] / t['median_us']:.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
