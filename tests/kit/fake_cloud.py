"""An in-process cloud for API tests: a Controller (ServeConfig overrides) on a free loopback
port, and in-process agents on the fake driver, connected and (when asked) reading up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mininova.agent import Agent
from mininova.config import AgentConfig, ServeConfig
from mininova.controller import Controller
from mininova.virt.fake import FakeDriver
from tests.kit.net import free_port
from tests.kit.wait import wait_for

if TYPE_CHECKING:
    from tests.conftest import ApiClient


@contextlib.asynccontextmanager
async def running_controller(
    tmp_path: Path, database_url: str | None, **settings: Any
) -> AsyncIterator[Controller]:
    """A started Controller with its data under tmp_path/data; `settings` override ServeConfig."""
    defaults: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "listen": f"127.0.0.1:{free_port()}",
        "heartbeat_interval": 0.5,
        "database_url": database_url or "",
    }
    ctl = Controller(ServeConfig(**{**defaults, **settings}))
    await ctl.start()
    try:
        yield ctl
    finally:
        await ctl.stop()


@contextlib.asynccontextmanager
async def fake_agent(
    controller: Controller, tmp_path: Path, host: str = "node1", api: ApiClient | None = None
) -> AsyncIterator[FakeDriver]:
    """An in-process agent on a FakeDriver joined to `controller` as `host`, connected; with
    `api`, also until the hypervisor list shows a host up. Yields the driver."""
    driver = FakeDriver(boot_seconds=0.01, op_seconds=0)
    config = AgentConfig(
        controller=controller.config.base_url,
        token=controller.join_token,
        host=host,
        driver="fake",
        data_dir=tmp_path / host,
        heartbeat_interval=0.2,
        reconnect_max_backoff=0.2,
    )
    agent = Agent(config, driver)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 5)
        if api is not None:
            client = api

            async def up() -> bool:
                _, body, _ = await client.get("/compute/v2.1/os-hypervisors/detail", version="2.88")
                return any(h["state"] == "up" for h in body["hypervisors"])

            await wait_for(up, 5, 0.05, f"the fake host {host} to read up")
        yield driver
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.cleanup_host()
