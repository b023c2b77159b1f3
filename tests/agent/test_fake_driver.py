"""FakeDriver transitions, inventory, console log and fake VNC; specs; factory; order locks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from mininova.agent.handlers import OrderHandlers
from mininova.agent.specs import guest_from_dict, guest_to_dict, spec_from_dict
from mininova.config import AgentConfig
from mininova.protocol.core import ProtocolError
from mininova.virt.driver import (
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    DriverError,
    GuestNotFound,
)
from mininova.virt.factory import create_driver
from mininova.virt.fake import FakeDriver, fake_ipv4

from .conftest import instance_dict


@pytest.fixture
def driver() -> FakeDriver:
    return FakeDriver(vcpus=4, memory_mb=4096, disk_gb=40, boot_seconds=0.01, op_seconds=0)


@pytest.fixture
def events(driver: FakeDriver) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []

    async def record(uuid: str, state: int) -> None:
        seen.append((uuid, state))

    driver.set_event_callback(record)
    return seen


async def test_spawn_resources_and_addresses(driver: FakeDriver, events) -> None:
    res = await driver.host_resources()
    assert (res.vcpus, res.memory_mb, res.local_gb, res.vcpus_used) == (4, 4096, 40, 0)
    assert res.hypervisor_type == "fake"
    spec = spec_from_dict(
        instance_dict(
            flavor={
                "id": "2",
                "name": "m1.small",
                "vcpus": 2,
                "ram_mb": 2048,
                "disk_gb": 20,
                "ephemeral_gb": 1,
                "swap_mb": 512,
            }
        )
    )
    info = await driver.spawn(spec)
    assert info.power_state == RUNNING
    assert events == [(spec.uuid, RUNNING)]
    addr = info.addresses[0]
    assert addr == {"version": 4, "addr": fake_ipv4(spec.mac_address), "mac": spec.mac_address}
    assert addr["addr"].startswith("10.0.") and fake_ipv4(spec.mac_address) == addr["addr"]
    res = await driver.host_resources()
    assert (res.vcpus_used, res.memory_mb_used, res.local_gb_used) == (2, 2048, 22)
    assert await driver.spawn(spec) == info  # repeated order: same guest, no second boot
    assert len(await driver.list_guests()) == 1
    await driver.destroy(spec.uuid)
    assert await driver.list_guests() == []
    assert (await driver.host_resources()).vcpus_used == 0
    await driver.destroy(spec.uuid)  # idempotent


async def test_power_transitions(driver: FakeDriver, events) -> None:
    spec = spec_from_dict(instance_dict())
    uuid = spec.uuid
    await driver.spawn(spec)

    async def state() -> int:
        return (await driver.get_info(uuid)).power_state

    await driver.pause(uuid)
    assert await state() == PAUSED
    with pytest.raises(DriverError):
        await driver.resume(uuid)  # paused, not suspended
    await driver.unpause(uuid)
    assert await state() == RUNNING
    await driver.suspend(uuid)
    assert await state() == SUSPENDED
    with pytest.raises(DriverError):
        await driver.pause(uuid)
    await driver.resume(uuid)
    await driver.power_off(uuid)
    assert await state() == SHUTDOWN
    await driver.power_off(uuid)  # already off: no-op, no event
    with pytest.raises(DriverError):
        await driver.pause(uuid)
    with pytest.raises(DriverError):
        await driver.console_endpoint(uuid)
    await driver.reboot(uuid, hard=False)  # soft reboot of a stopped guest → hard
    assert await state() == RUNNING
    await driver.fake_guest_poweroff(uuid)
    assert await state() == SHUTDOWN
    await driver.power_on(uuid)
    assert [s for _, s in events] == [
        RUNNING,
        PAUSED,
        RUNNING,
        SUSPENDED,
        RUNNING,
        SHUTDOWN,
        RUNNING,
        SHUTDOWN,
        RUNNING,
    ]
    log = await driver.console_output(uuid)
    lines = log.splitlines()
    assert lines[:3] == ["mininova fake guest", "hostname=vm-one", f"uuid={uuid}"]
    assert any("pause: running -> paused" in line for line in lines)
    assert any("guest poweroff" in line for line in lines)


async def test_missing_guest(driver: FakeDriver) -> None:
    for op in (
        "power_off",
        "power_on",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "get_info",
        "console_output",
        "console_endpoint",
        "fake_guest_poweroff",
    ):
        with pytest.raises(GuestNotFound):
            await getattr(driver, op)("missing")
    with pytest.raises(GuestNotFound):
        await driver.reboot("missing", hard=True)


async def test_spawn_failure_requests(driver: FakeDriver) -> None:
    with pytest.raises(DriverError, match="fake spawn failure requested"):
        await driver.spawn(spec_from_dict(instance_dict(metadata={"fake_fail_spawn": "1"})))
    image = instance_dict()["image"] | {"name": "fail-cirros"}
    with pytest.raises(DriverError, match="fake spawn failure requested"):
        await driver.spawn(spec_from_dict(instance_dict(image=image)))
    assert await driver.list_guests() == []


async def test_console_endpoint_serves_fake_vnc(driver: FakeDriver) -> None:
    spec = spec_from_dict(instance_dict())
    await driver.spawn(spec)
    ep = await driver.console_endpoint(spec.uuid)
    assert ep.host == "127.0.0.1" and ep.port
    assert await driver.console_endpoint(spec.uuid) == ep  # started once
    reader, writer = await asyncio.open_connection(ep.host, ep.port)
    assert await reader.readexactly(12) == b"RFB 003.008\n"
    writer.close()
    await driver.destroy(spec.uuid)
    with pytest.raises(OSError):
        await asyncio.open_connection(ep.host, ep.port)


def test_spec_from_dict_validation() -> None:
    spec = spec_from_dict(instance_dict(key_name=None, public_keys={"k": "ssh-ed25519 AAA"}))
    assert spec.flavor.vcpus == 1 and spec.image.name == "cirros" and spec.config_drive
    assert spec.public_keys == {"k": "ssh-ed25519 AAA"}
    cases = {
        "instance: expected an object": [1],
        "instance: missing field 'uuid'": {k: v for k, v in instance_dict().items() if k != "uuid"},
        "instance.flavor.vcpus: expected an integer": instance_dict(
            flavor={"id": "1", "name": "x", "vcpus": True, "ram_mb": 1, "disk_gb": 1}
        ),
        "instance.image: missing field 'checksum'": instance_dict(
            image={
                "id": "i",
                "name": "n",
                "disk_format": "raw",
                "size": 1,
                "url": "u",
                "capability": "t",
            }
        ),
        "instance.metadata['a']: expected a string": instance_dict(metadata={"a": 1}),
        "instance.config_drive: expected a boolean": instance_dict(config_drive="yes"),
        "instance.key_name: expected a string": instance_dict(key_name=3),
        "instance.uuid: must not be empty": instance_dict() | {"uuid": ""},
    }
    for message, data in cases.items():
        with pytest.raises(ValueError) as err:
            spec_from_dict(data)
        assert message in str(err.value), (message, str(err.value))
    extra = instance_dict(future_field=1)  # unknown keys are ignored
    assert spec_from_dict(extra).uuid == extra["uuid"]


async def test_guest_dict_roundtrip(driver: FakeDriver) -> None:
    info = await driver.spawn(spec_from_dict(instance_dict()))
    assert guest_from_dict(guest_to_dict(info)) == info


async def test_orders_for_one_guest_never_overlap() -> None:
    class Tracking(FakeDriver):
        active = 0
        peak = 0

        async def _track(self) -> None:
            Tracking.active += 1
            Tracking.peak = max(Tracking.peak, Tracking.active)
            await asyncio.sleep(0.02)  # real time on purpose: a window for an overlap to show
            Tracking.active -= 1

        async def power_off(self, uuid: str) -> None:
            await self._track()
            await super().power_off(uuid)

        async def power_on(self, uuid: str) -> None:
            await self._track()
            await super().power_on(uuid)

    driver = Tracking(boot_seconds=0, op_seconds=0)
    handlers = OrderHandlers(driver)
    table = handlers.table()
    a, b = instance_dict(), instance_dict()
    await table["spawn"]({"instance": a})
    await table["spawn"]({"instance": b})
    ops = [table[op]({"uuid": a["uuid"]}) for op in ("power_off", "power_on") * 3]
    await asyncio.gather(*ops)
    assert Tracking.peak == 1
    assert handlers._locks == {}  # locks are dropped once unused
    Tracking.peak = 0
    await asyncio.gather(
        table["power_off"]({"uuid": a["uuid"]}), table["power_off"]({"uuid": b["uuid"]})
    )
    assert Tracking.peak == 2  # different guests run concurrently


def test_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = AgentConfig(
        driver="fake",
        data_dir=tmp_path,
        fake_vcpus=3,
        fake_memory_mb=1000,
        fake_disk_gb=7,
        fake_boot_seconds=0.5,
    )
    driver = create_driver(config)
    assert isinstance(driver, FakeDriver)
    assert (driver.vcpus, driver.memory_mb, driver.disk_gb, driver.boot_seconds) == (
        3,
        1000,
        7,
        0.5,
    )
    with pytest.raises(ValueError, match="unknown compute driver"):
        create_driver(AgentConfig(driver="xen", data_dir=tmp_path))
    monkeypatch.setitem(sys.modules, "mininova.virt.libvirt.driver", None)
    with pytest.raises(DriverError, match="libvirt driver unavailable"):
        create_driver(AgentConfig(driver="libvirt", data_dir=tmp_path))


async def test_network_members_orders_update_the_state_the_driver_enforces(
    driver: FakeDriver,
) -> None:
    table = OrderHandlers(driver).table()
    whole = {
        "version": 3,
        "host": "fake1",
        "epoch": "run1",
        "remote_groups": {"g": ["10.0.0.1"]},
        "remote_group_versions": {"g": 1},
        "instances": [],
    }
    await table["network_sync"]({"state": whole})
    assert driver.network_state is not None and driver.network_state["version"] == 2
    change = {"from": 1, "version": 2, "add": ["10.0.0.2"], "remove": []}
    await table["network_members"]({"epoch": "run1", "groups": {"g": change}})
    assert driver.network_state["remote_groups"] == {"g": ["10.0.0.1", "10.0.0.2"]}
    with pytest.raises(ProtocolError) as refused:  # the same change again: not from version 2
        await table["network_members"]({"epoch": "run1", "groups": {"g": change}})
    assert refused.value.code == "stale_state"
    assert driver.network_syncs == 2


async def test_the_state_file_holds_every_change_to_every_guest(tmp_path: Path) -> None:
    """Saves encode only the guests that changed: what a restarted fake reads back is what
    the running one holds, after boots, power changes, log lines and deletes."""
    state_file = tmp_path / "fake-guests.json"

    def started() -> FakeDriver:
        return FakeDriver(boot_seconds=0, op_seconds=0, state_file=state_file)

    driver = started()
    specs = [spec_from_dict(instance_dict()) for _ in range(4)]
    for spec in specs:
        await driver.spawn(spec)
    await driver.power_off(specs[1].uuid)
    await driver.reboot(specs[2].uuid, hard=False)
    await driver.destroy(specs[3].uuid)

    async def seen(fake: FakeDriver) -> dict[str, tuple[int, str]]:
        return {
            g.uuid: (g.power_state, await fake.console_output(g.uuid))
            for g in await fake.list_guests()
        }

    expected = await seen(driver)
    assert sorted(expected) == sorted(s.uuid for s in specs[:3])
    assert expected[specs[1].uuid][0] == SHUTDOWN
    assert "soft reboot" in expected[specs[2].uuid][1]
    assert await seen(started()) == expected

    # A full log takes a line (its first one goes): the next save still writes it.
    guest = driver._guests[specs[0].uuid]
    guest.log.extend(f"line {n}" for n in range(guest.log.maxlen or 0))
    await driver.reboot(specs[2].uuid, hard=True)
    guest.log.append("the newest line")
    await driver.power_off(specs[0].uuid)
    assert await seen(started()) == await seen(driver)
