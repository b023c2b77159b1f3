"""The agent against the real controller's AgentHub (in-process controller fixture)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mininova.agent import Agent
from mininova.config import AgentConfig
from mininova.controller import Controller
from mininova.store import hosts
from mininova.virt.driver import RUNNING
from mininova.virt.fake import FakeDriver

from .conftest import instance_dict


async def test_agent_registers_with_real_hub(controller: Controller, tmp_path: Path) -> None:
    creds = controller.credentials
    assert creds is not None
    hub = controller.hub
    config = AgentConfig(
        controller=controller.config.base_url,
        token=controller.join_token,
        host="hub-node",
        driver="fake",
        data_dir=tmp_path,
        heartbeat_interval=0.2,
        reconnect_max_backoff=0.2,
    )
    driver = FakeDriver(boot_seconds=0.01, op_seconds=0)
    agent = Agent(config, driver)
    task = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 5)
        assert hub.is_connected("hub-node")
        row = await hosts.get_node(controller.store, "hub-node")
        assert row["connected"] == 1 and row["hypervisor_type"] == "fake"
        assert row["vcpus"] == 16
        spec = instance_dict()
        info = await hub.call("hub-node", "spawn", {"instance": spec}, timeout=5)
        assert info["power_state"] == RUNNING
        info = await hub.call("hub-node", "get_info", {"uuid": spec["uuid"]}, timeout=5)
        assert info["uuid"] == spec["uuid"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.cleanup_host()
