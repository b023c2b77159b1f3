"""A stand-in controller (tiny aiohttp websocket server) and spec builders for agent tests."""

from __future__ import annotations

import asyncio
import json
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from mininova.agent import Agent
from mininova.config import AgentConfig
from mininova.protocol.peer import Peer
from mininova.virt.fake import FakeDriver
from tests.kit.net import free_port

TOKEN = "join-secret"


def instance_dict(uuid: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A spawn `instance` param as the conductor sends it."""
    uuid = uuid or str(uuidlib.uuid4())
    data: dict[str, Any] = {
        "uuid": uuid,
        "name": "vm one",
        "hostname": "vm-one",
        "domain_name": "instance-00000001",
        "project_id": "p1",
        "user_id": "u1",
        "flavor": {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram_mb": 512, "disk_gb": 1},
        "image": {
            "id": "img1",
            "name": "cirros",
            "disk_format": "qcow2",
            "size": 100,
            "checksum": "0" * 32,
            "url": "http://ctl/image/v2/images/img1/file",
            "capability": "t",
        },
        "mac_address": "fa:16:3e:00:00:01",
        "metadata": {},
    }
    data.update(overrides)
    return data


class Conn:
    """One accepted agent link, seen from the controller side."""

    def __init__(self, ws: web.WebSocketResponse, ctl: FakeController) -> None:
        self.ws = ws
        self.frames: list[Any] = []  # every frame the agent sent, parsed (raw if not JSON)
        self._changed = asyncio.Condition()
        self.closed = asyncio.Event()
        self.peer = Peer(
            ws.send_str,
            {
                "hello": ctl.on_hello,
                "heartbeat": ctl.on_heartbeat,
                "instance_event": ctl.on_event,
            },
            name="test-controller",
        )

    async def record(self, data: Any) -> None:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        async with self._changed:
            self.frames.append(parsed)
            self._changed.notify_all()

    async def expect(self, pred: Callable[[Any], bool], timeout: float = 3.0) -> Any:
        """The first frame from the agent matching `pred` (waiting for it if needed)."""

        async def find() -> Any:
            async with self._changed:
                while True:
                    for frame in self.frames:
                        if pred(frame):
                            return frame
                    await self._changed.wait()

        return await asyncio.wait_for(find(), timeout)

    async def reply_to(self, request_id: int, timeout: float = 3.0) -> dict[str, Any]:
        return await self.expect(
            lambda f: (
                isinstance(f, dict)
                and f.get("id") == request_id
                and ("result" in f or "error" in f)
            ),
            timeout,
        )

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> Any:
        return await self.peer.call(method, params or {}, timeout=timeout)


class FakeController:
    def __init__(self, token: str = TOKEN, heartbeat_interval: float = 0.1) -> None:
        self.token = token
        self.heartbeat_interval = heartbeat_interval
        self.hellos: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.heartbeats: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.conns: asyncio.Queue[Conn] = asyncio.Queue()
        self.rejected: list[float] = []  # loop time of each refused attempt
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def on_hello(self, params: dict[str, Any]) -> dict[str, Any]:
        await self.hellos.put(params)
        return {"heartbeat_interval": self.heartbeat_interval}

    async def on_heartbeat(self, params: dict[str, Any]) -> dict[str, Any]:
        self.heartbeats.append(params)
        return {}

    async def on_event(self, params: dict[str, Any]) -> dict[str, Any]:
        await self.events.put(params)
        return {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.rejected.append(asyncio.get_running_loop().time())
            return web.json_response({"error": "bad token"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(ws, self)
        await self.conns.put(conn)
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await conn.record(msg.data)
                    await conn.peer.feed(msg.data)
        finally:
            conn.peer.close()
            conn.closed.set()
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/agent", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def agent_config(ctl: FakeController, tmp_path: Path, **kw: Any) -> AgentConfig:
    values: dict[str, Any] = dict(
        controller=ctl.url,
        token=TOKEN,
        host="node1",
        driver="fake",
        data_dir=tmp_path,
        heartbeat_interval=0.1,
        reconnect_max_backoff=0.2,
        fake_boot_seconds=0.05,
    )
    values.update(kw)
    return AgentConfig(**values)


@pytest.fixture
async def ctl() -> AsyncIterator[FakeController]:
    controller = FakeController()
    await controller.start()
    try:
        yield controller
    finally:
        await controller.stop()


class Running:
    def __init__(self, agent: Agent, driver: FakeDriver, task: asyncio.Task[None]) -> None:
        self.agent = agent
        self.driver = driver
        self.task = task


@pytest.fixture
async def running(ctl: FakeController, tmp_path: Path) -> AsyncIterator[Running]:
    driver = FakeDriver(boot_seconds=0.05, op_seconds=0.001)
    agent = Agent(agent_config(ctl, tmp_path), driver)
    task = asyncio.create_task(agent.run())
    try:
        yield Running(agent, driver, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.cleanup_host()
