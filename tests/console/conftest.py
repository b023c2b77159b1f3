"""Console test fixtures: the in-process controller plus an in-process fake-driver agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mininova.config import AgentConfig
from mininova.controller import Controller
from tests.conftest import ApiClient
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"
HOST = "console-node"


@dataclass
class ConsoleEnv:
    controller: Controller
    api: ApiClient
    driver: Any
    agent: Any

    @property
    def base(self) -> str:
        return self.controller.config.base_url

    def ws_url(self, token: str, **extra: str) -> str:
        query = "&".join([f"token={token}", *(f"{k}={v}" for k, v in extra.items())])
        return self.base.replace("http://", "ws://") + "/console/websockify?" + query

    async def image(self) -> str:
        status, image, _ = await self.api.post(
            "/image/v2/images",
            json={"name": "img", "disk_format": "qcow2", "container_format": "bare"},
        )
        assert status == 201, image
        status, _, _ = await self.api.put(
            f"/image/v2/images/{image['id']}/file",
            data=b"x" * 1024,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert status == 204
        return image["id"]

    async def server(self, name: str = "vm1", api: ApiClient | None = None) -> str:
        api = api or self.api
        image = await self.image()
        status, body, _ = await api.post(
            SERVERS,
            json={
                "server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}
            },
            version="2.37",
        )
        assert status == 202, body
        uuid = body["server"]["id"]
        await self.wait_status(uuid, "ACTIVE")
        return uuid

    async def wait_status(self, uuid: str, want: str, timeout: float = 10.0) -> dict:
        last: list[Any] = [None]

        async def reached() -> dict | None:
            status, body, _ = await self.api.get(f"{SERVERS}/{uuid}")
            last[0] = (status, body)
            ok = status == 200 and body["server"]["status"] == want
            return body["server"] if ok else None

        return await wait_for(reached, timeout, 0.05, lambda: f"{uuid} to reach {want}: {last[0]}")

    async def console_url(self, uuid: str, api: ApiClient | None = None) -> str:
        status, body, _ = await (api or self.api).post(
            f"{SERVERS}/{uuid}/remote-consoles",
            json={"remote_console": {"protocol": "vnc", "type": "novnc"}},
            version="2.6",
        )
        assert status == 200, body
        return body["remote_console"]["url"]

    async def token(self, uuid: str) -> str:
        return token_of(await self.console_url(uuid))


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def start_agent(
    controller: Controller, data_dir: Path, host: str = HOST
) -> tuple[Any, Any, asyncio.Task[None]]:
    from mininova.agent import Agent
    from mininova.virt.fake import FakeDriver

    assert controller.credentials is not None
    config = AgentConfig(
        controller=controller.config.base_url,
        token=controller.join_token,
        host=host,
        driver="fake",
        data_dir=data_dir,
        heartbeat_interval=0.5,
        reconnect_max_backoff=0.5,
        fake_boot_seconds=0.05,
    )
    driver = FakeDriver(boot_seconds=0.05, op_seconds=0.001)
    agent = Agent(config, driver)
    task = asyncio.create_task(agent.run(), name=f"agent {host}")
    await asyncio.wait_for(agent.connected.wait(), 10)
    return agent, driver, task


@pytest.fixture
async def env(controller: Controller, api: ApiClient, tmp_path: Path) -> AsyncIterator[ConsoleEnv]:
    agent, driver, task = await start_agent(controller, tmp_path / "agent")
    try:
        yield ConsoleEnv(controller, api, driver, agent)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        from mininova.agent import tunnel

        await tunnel.close_all()
        await driver.cleanup_host()
