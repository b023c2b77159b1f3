"""What the conductor makes of agents' reports: self power-off, vanished guests, orphans."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.agent import Agent
from mininova.agent.specs import spec_from_dict
from mininova.config import AgentConfig
from mininova.controller import Controller
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.kit.wait import wait_for

from .conftest import instance_dict


async def _start_agent(
    controller: Controller, tmp_path: Path, driver: FakeDriver, destroy_orphans: bool = False
) -> asyncio.Task[None]:
    creds = controller.credentials
    assert creds is not None
    config = AgentConfig(
        controller=controller.config.base_url,
        token=controller.join_token,
        host="node1",
        driver="fake",
        data_dir=tmp_path,
        heartbeat_interval=0.2,
        reconnect_max_backoff=0.2,
        destroy_orphans=destroy_orphans,
    )
    agent = Agent(config, driver)
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 5)
    return task


async def _lacks_guest(driver: FakeDriver, uuid: str) -> bool:
    return uuid not in {g.uuid for g in await driver.list_guests()}


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def booted(
    api: ApiClient, controller: Controller, tmp_path: Path
) -> AsyncIterator[tuple[str, FakeDriver, asyncio.Task[None]]]:
    driver = FakeDriver(boot_seconds=0.01, op_seconds=0)
    task = await _start_agent(controller, tmp_path, driver)
    image_id = await api.upload_image()
    status, body, _ = await api.post(
        "/compute/v2.1/servers",
        json={"server": {"name": "vm", "imageRef": image_id, "flavorRef": "1"}},
    )
    assert status == 202, body
    uuid = body["server"]["id"]
    await api.wait_server(uuid, "ACTIVE")
    try:
        yield uuid, driver, task
    finally:
        await _stop(task)
        await driver.cleanup_host()


async def test_guest_powering_itself_off_reads_shutoff(api: ApiClient, booted) -> None:
    uuid, driver, _ = booted
    await driver.fake_guest_poweroff(uuid)
    server = await api.wait_server(uuid, "SHUTOFF")
    assert server["OS-EXT-STS:power_state"] == 4


async def test_vanished_guest_becomes_error_with_fault(api: ApiClient, booted) -> None:
    uuid, driver, _ = booted
    driver._guests.pop(uuid)  # gone behind the controller's back (e.g. virsh undefine)
    server = await api.wait_server(uuid, "ERROR")
    assert "vanished" in server["fault"]["message"]


async def test_unknown_guest_is_left_alone_unless_configured(
    api: ApiClient, controller: Controller, tmp_path: Path
) -> None:
    orphan = instance_dict()
    for destroy, survives in ((False, True), (True, False)):
        driver = FakeDriver(boot_seconds=0.01, op_seconds=0)
        await driver.spawn(spec_from_dict(orphan))
        # the same host restarted (same data dir: it keeps its host credential)
        task = await _start_agent(controller, tmp_path, driver, destroy_orphans=destroy)
        try:
            if survives:
                # The hello cast host_connected before the agent saw its reply: once the bus
                # is drained the conductor has decided, so no waiting for "long enough".
                await controller.bus.drain()
                assert not await _lacks_guest(driver, orphan["uuid"])
            else:
                lacks = functools.partial(_lacks_guest, driver, orphan["uuid"])
                await wait_for(lacks, 5, 0.05, "the orphan to be destroyed")
        finally:
            await _stop(task)
            await driver.cleanup_host()


async def test_deleted_instance_guest_is_reaped_on_reconnect(
    api: ApiClient, controller: Controller, booted, tmp_path: Path
) -> None:
    uuid, driver, task = booted
    await _stop(task)  # the host goes away ...
    status, _, _ = await api.delete(f"/compute/v2.1/servers/{uuid}")
    assert status == 204

    async def gone() -> bool:
        return (await api.get(f"/compute/v2.1/servers/{uuid}"))[0] == 404

    await wait_for(gone, 5, 0.05, "the local delete")  # ... the delete completes locally ...
    assert uuid in {g.uuid for g in await driver.list_guests()}
    task = await _start_agent(controller, tmp_path, driver)  # ... and comes back
    try:
        reaped = functools.partial(_lacks_guest, driver, uuid)
        await wait_for(reaped, 5, 0.05, "the guest of the deleted instance to be reaped")
    finally:
        await _stop(task)
