"""Resize (confirm/revert) and cold migration with in-process fake agents: the API and its
state machine, claims, quota, the no-host rollback, auto-confirm, the disk's trip through the
controller, the failure paths, and the real `openstack` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mininova import timeutil
from mininova.agent import Agent
from mininova.config import AgentConfig, ServeConfig
from mininova.controller import Controller
from mininova.store import allocations, instances, migrations
from mininova.virt.fake import FakeDriver
from tests.api.cli import run_openstack
from tests.conftest import ApiClient, free_port, login
from tests.kit.clock import FakeClock
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"


@dataclass
class Cloud:
    controller: Controller
    api: ApiClient
    drivers: dict[str, FakeDriver]
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    image: str = ""

    async def boot(self, name: str = "vm", flavor: str = "1", **server: Any) -> dict:
        body = {"name": name, "imageRef": self.image, "flavorRef": flavor, "networks": "none"}
        status, resp, _ = await self.api.post(
            SERVERS, json={"server": {**body, **server}}, version="2.100"
        )
        assert status == 202, resp
        return await self.api.wait_server(resp["server"]["id"], "ACTIVE")

    async def action(self, uuid: str, body: Any, version: str = "2.100") -> tuple[int, Any]:
        status, resp, _ = await self.api.post(
            f"{SERVERS}/{uuid}/action", json=body, version=version
        )
        return status, resp

    async def claims(self) -> dict[str, tuple]:
        rows = await allocations.all_claims(self.controller.store)
        return {r["instance_uuid"]: (r["host"], r["vcpus"], r["memory_mb"]) for r in rows}

    async def migrations(self) -> list[dict]:
        status, body, _ = await self.api.get("/compute/v2.1/os-migrations", version="2.80")
        assert status == 200, body
        return body["migrations"]

    async def used(self) -> tuple[int, int]:
        """(cores, RAM MiB) the project's quota counts now (GET /limits)."""
        _, body, _ = await self.api.get("/compute/v2.1/limits")
        absolute = body["limits"]["absolute"]
        return absolute["totalCoresUsed"], absolute["totalRAMUsed"]

    async def events(self, uuid: str) -> list[dict]:
        _, actions, _ = await self.api.get(f"{SERVERS}/{uuid}/os-instance-actions")
        request_id = actions["instanceActions"][0]["request_id"]
        _, action, _ = await self.api.get(
            f"{SERVERS}/{uuid}/os-instance-actions/{request_id}", version="2.51"
        )
        return action["instanceAction"]["events"]

    async def start_agent(self, host: str, tmp_path: Path) -> None:
        """Start (or restart, with the same guests) the in-process agent of `host`."""
        driver = self.drivers.setdefault(host, FakeDriver(boot_seconds=0.01, op_seconds=0))
        config = self.controller.config
        agent = Agent(
            AgentConfig(
                controller=config.base_url,
                token=self.controller.join_token,
                host=host,
                driver="fake",
                data_dir=tmp_path / host,
                heartbeat_interval=0.2,
                reconnect_max_backoff=0.2,
            ),
            driver,
        )
        self.tasks[host] = asyncio.create_task(agent.run())
        await asyncio.wait_for(agent.connected.wait(), 5)

    async def stop_agent(self, host: str) -> None:
        task = self.tasks.pop(host)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@contextlib.asynccontextmanager
async def cloud(tmp_path: Path, hosts: int, **settings: Any) -> AsyncIterator[Cloud]:
    config = ServeConfig(
        data_dir=tmp_path / "data",
        listen=f"127.0.0.1:{free_port()}",
        heartbeat_interval=0.3,
        **settings,
    )
    ctl = Controller(config)
    await ctl.start()
    session = aiohttp.ClientSession()
    c: Cloud | None = None
    try:
        creds = ctl.credentials
        assert creds is not None
        token, body = await login(
            session, config.base_url, creds.username, creds.password, creds.project
        )
        api = ApiClient(config.base_url, session, token, body["project"]["id"], body["user"]["id"])
        c = Cloud(ctl, api, {})
        for index in range(hosts):
            await c.start_agent(f"host{index + 1}", tmp_path)

        async def all_up() -> bool:
            _, body, _ = await api.get("/compute/v2.1/os-hypervisors/detail", version="2.88")
            return sum(h["state"] == "up" for h in body["hypervisors"]) == hosts

        await wait_for(all_up, 5, 0.05, "the hosts to be up")
        c.image = await api.upload_image("cirros")
        yield c
    finally:
        if c is not None:
            for host in list(c.tasks):
                await c.stop_agent(host)
        await session.close()
        await ctl.stop()


def _flavor(server: dict) -> tuple[str, int, int]:
    flavor = server["flavor"]
    return flavor["original_name"], flavor["vcpus"], flavor["ram"]


async def _wait_task(c: Cloud, uuid: str, check: Callable[[dict], bool], what: str) -> dict:
    async def reached() -> dict | None:
        _, body, _ = await c.api.get(f"{SERVERS}/{uuid}", version="2.100")
        return body["server"] if check(body["server"]) else None

    return await wait_for(reached, 10, 0.02, what)


async def test_resize_same_host_confirm_then_revert(tmp_path: Path) -> None:
    async with cloud(tmp_path, 1, allow_resize_to_same_host=True) as c:
        server = await c.boot()
        uuid = server["id"]
        status, body = await c.action(uuid, {"resize": {"flavorRef": "1"}})
        assert status == 400 and "must change flavor" in body["badRequest"]["message"]

        status, _ = await c.action(uuid, {"resize": {"flavorRef": "3"}})
        assert status == 202
        resized = await c.api.wait_server(uuid, "VERIFY_RESIZE")
        assert resized["OS-EXT-STS:vm_state"] == "resized"
        assert resized["OS-EXT-SRV-ATTR:host"] == "host1"
        assert _flavor(resized) == ("m1.tiny", 1, 512)
        (migration,) = await c.migrations()
        assert migration["status"] == "finished"
        assert (migration["migration_type"], migration["source_compute"]) == ("resize", "host1")
        assert (migration["old_instance_type_id"], migration["new_instance_type_id"]) == ("1", "3")
        # new flavor claimed for the instance, old one still held by the migration
        assert await c.claims() == {
            uuid: ("host1", 1, 512),
            migration["uuid"]: ("host1", 1, 64),
        }
        assert c.drivers["host1"].kept_aside() == [uuid]
        assert await c.used() == (1, 512)  # the larger flavor counts until confirm/revert
        # power actions are refused while it waits for confirmation
        status, _ = await c.action(uuid, {"os-stop": None})
        assert status == 409

        status, _ = await c.action(uuid, {"confirmResize": None})
        assert status == 204
        confirmed = await c.api.wait_server(uuid, "ACTIVE")
        assert _flavor(confirmed) == ("m1.tiny", 1, 512)
        assert await c.claims() == {uuid: ("host1", 1, 512)}
        assert c.drivers["host1"].kept_aside() == []
        assert (await c.migrations())[0]["status"] == "confirmed"
        status, _ = await c.action(uuid, {"confirmResize": None})
        assert status == 409

        # resize again, then revert: back to m1.tiny, the new claim released
        status, _ = await c.action(uuid, {"resize": {"flavorRef": "5"}})
        assert status == 202
        await c.api.wait_server(uuid, "VERIFY_RESIZE")
        assert await c.used() == (2, 4096)
        status, _ = await c.action(uuid, {"revertResize": None})
        assert status == 202
        reverted = await c.api.wait_server(uuid, "ACTIVE")
        assert _flavor(reverted) == ("m1.tiny", 1, 512)
        assert await c.claims() == {uuid: ("host1", 1, 512)}
        assert (await c.migrations())[0]["status"] == "reverted"
        assert await c.used() == (1, 512)
        guest = await c.drivers["host1"].get_info(uuid)
        assert guest.power_state == 1
        log = await c.drivers["host1"].console_output(uuid)
        assert "resize reverted" in log
        events = [e["event"] for e in await c.events(uuid)]
        assert "compute_revert_resize" in events


async def test_no_host_rolls_back_and_quota_is_403(tmp_path: Path) -> None:
    async with cloud(tmp_path, 1) as c:  # allow_resize_to_same_host is False by default
        server = await c.boot()
        uuid = server["id"]
        status, _ = await c.action(uuid, {"resize": {"flavorRef": "2"}})
        assert status == 202

        async def rolled_back() -> bool:
            migrations = await c.migrations()
            return bool(migrations) and migrations[0]["status"] == "error"

        await wait_for(rolled_back, 10, 0.02, "the resize to fail")
        after = await c.api.wait_server(uuid, "ACTIVE")
        assert after["OS-EXT-STS:task_state"] is None
        assert _flavor(after) == ("m1.nano", 1, 64)
        (event,) = [e for e in await c.events(uuid) if e["event"] == "conductor_migrate_server"]
        assert event["result"] == "Error"
        assert "No valid host was found" in event["traceback"]
        assert await c.claims() == {uuid: ("host1", 1, 64)}
        # the guest kept running where it was
        assert (await c.drivers["host1"].get_info(uuid)).power_state == 1

        # quota: the growth in cores must fit
        project = c.api.project_id
        status, body, _ = await c.api.put(
            f"/compute/v2.1/os-quota-sets/{project}", json={"quota_set": {"cores": 1}}
        )
        assert status == 200, body
        status, body = await c.action(uuid, {"resize": {"flavorRef": "5"}})
        assert status == 403
        assert body["forbidden"]["message"] == (
            "Quota exceeded for cores: Requested 1, but already used 1 of 1 cores"
        )


async def test_cold_migration_through_the_controller_and_auto_confirm(tmp_path: Path) -> None:
    async with cloud(tmp_path, 2, resize_confirm_window=60) as c:
        server = await c.boot()
        uuid = server["id"]
        source = server["OS-EXT-SRV-ATTR:host"]
        target = "host2" if source == "host1" else "host1"
        status, _ = await c.action(uuid, {"migrate": {"host": source}})
        assert status == 400  # 2.56: not to its own host
        status, _ = await c.action(uuid, {"migrate": {"host": "nowhere"}})
        assert status == 400
        status, _ = await c.action(uuid, {"migrate": {"host": target}}, version="2.55")
        assert status == 400  # a host only from 2.56
        status, _ = await c.action(uuid, {"migrate": None}, version="2.55")
        assert status == 202
        migrated = await c.api.wait_server(uuid, "VERIFY_RESIZE")
        assert migrated["OS-EXT-SRV-ATTR:host"] == target
        assert _flavor(migrated) == ("m1.nano", 1, 64)
        (migration,) = await c.migrations()
        assert (migration["migration_type"], migration["dest_compute"]) == ("migration", target)
        # the guest booted from the disk that came through the controller
        log = await c.drivers[target].console_output(uuid)
        assert "booted from a moved disk" in log and f"uuid={uuid}" in log
        assert await c.drivers[source].list_guests() == []
        assert c.drivers[source].kept_aside() == [uuid]
        assert list((c.controller.config.data_dir / "migrations").iterdir()) == []

        # resize_confirm_window: nothing before it passed, confirmed after
        conductor = c.controller.conductor
        assert await conductor.confirm_expired_resizes() == 0
        later = FakeClock(timeutil.now_utc() + timedelta(seconds=120))
        with timeutil.use_clock(later):
            assert await conductor.confirm_expired_resizes() == 1
        await c.api.wait_server(uuid, "ACTIVE")
        assert c.drivers[source].kept_aside() == []
        assert await c.claims() == {uuid: (target, 1, 64)}
        status, body, _ = await c.api.get(f"{SERVERS}/{uuid}/migrations", version="2.23")
        assert (status, body) == (200, {"migrations": []})  # no live migrations here

        # deleted while waiting in VERIFY_RESIZE: the old claim and the kept copy go too
        status, _ = await c.action(uuid, {"migrate": None})
        assert status == 202
        await c.api.wait_server(uuid, "VERIFY_RESIZE")
        # 2.59: paged by limit and marker, newest first
        path = "/compute/v2.1/os-migrations?limit=1"
        _, first, _ = await c.api.get(path, version="2.59")
        (newest,) = first["migrations"]
        assert newest["status"] == "finished" and "migrations_links" in first
        _, second, _ = await c.api.get(f"{path}&marker={newest['uuid']}", version="2.59")
        assert [m["status"] for m in second["migrations"]] == ["confirmed"]
        status, _, _ = await c.api.get(f"{path}&marker=nope", version="2.59")
        assert status == 400
        status, _, _ = await c.api.delete(f"{SERVERS}/{uuid}")
        assert status == 204

        async def gone() -> bool:
            return (await c.api.get(f"{SERVERS}/{uuid}"))[0] == 404

        await wait_for(gone, 10, 0.05, f"{uuid} to be deleted")
        assert await conductor.drop_moves_of_deleted() == 1
        assert await c.claims() == {}
        assert c.drivers["host1"].kept_aside() == c.drivers["host2"].kept_aside() == []


async def test_target_dies_mid_migration(tmp_path: Path) -> None:
    async with cloud(tmp_path, 2) as c:
        server = await c.boot(metadata={"fake_finish_resize": "hang"})
        uuid = server["id"]
        source = server["OS-EXT-SRV-ATTR:host"]
        target = "host2" if source == "host1" else "host1"
        status, _ = await c.action(uuid, {"migrate": None})
        assert status == 202
        await _wait_task(
            c,
            uuid,
            lambda s: s["OS-EXT-STS:task_state"] == "resize_finish",
            "the migration to reach its target",
        )
        await c.stop_agent(target)
        back = await c.api.wait_server(uuid, "ACTIVE", timeout=20)
        assert back["OS-EXT-SRV-ATTR:host"] == source
        assert back["OS-EXT-STS:task_state"] is None
        assert (await c.drivers[source].get_info(uuid)).power_state == 1
        assert c.drivers[source].kept_aside() == []
        assert await c.claims() == {uuid: (source, 1, 64)}
        assert (await c.migrations())[0]["status"] == "error"
        assert list((c.controller.config.data_dir / "migrations").iterdir()) == []
        # the target had half built the guest: when it returns, that is reaped
        assert [g.uuid for g in await c.drivers[target].list_guests()] == [uuid]
        await c.start_agent(target, tmp_path)

        async def reaped() -> bool:
            return await c.drivers[target].list_guests() == []

        await wait_for(reaped, 10, 0.05, "the half-built guest on the target to be reaped")
        assert (await c.drivers[source].get_info(uuid)).power_state == 1


async def test_revert_with_source_down_is_409(tmp_path: Path) -> None:
    async with cloud(tmp_path, 2) as c:
        server = await c.boot()
        uuid = server["id"]
        source = server["OS-EXT-SRV-ATTR:host"]
        status, _ = await c.action(uuid, {"migrate": None})
        assert status == 202
        await c.api.wait_server(uuid, "VERIFY_RESIZE")
        await c.stop_agent(source)

        async def source_down() -> bool:
            _, body, _ = await c.api.get("/compute/v2.1/os-hypervisors/detail", version="2.88")
            return any(
                h["hypervisor_hostname"] == source and h["state"] == "down"
                for h in body["hypervisors"]
            )

        await wait_for(source_down, 10, 0.05, "the source host to be down")
        status, body = await c.action(uuid, {"revertResize": None})
        assert status == 409
        assert f"source host {source} is not up" in body["conflictingRequest"]["message"]
        # confirming still works: the kept copy goes when the source returns
        status, _ = await c.action(uuid, {"confirmResize": None})
        assert status == 204
        await c.api.wait_server(uuid, "ACTIVE")


@pytest.mark.first_backend_only
async def test_openstack_cli_resize_confirm_revert_migrate(tmp_path: Path) -> None:
    async with cloud(tmp_path, 2, allow_resize_to_same_host=True) as c:
        uuid = (await c.boot("cli-vm"))["id"]

        async def osc(*args: str) -> str:
            code, out, err = await run_openstack(c.controller, *args)
            assert code == 0, err
            return out

        async def show() -> dict:
            _, body, _ = await c.api.get(f"{SERVERS}/{uuid}", version="2.100")
            return body["server"]

        await osc("server", "resize", "--flavor", "m1.micro", "--wait", "cli-vm")
        assert (await show())["status"] == "VERIFY_RESIZE"
        await osc("server", "resize", "revert", "cli-vm")
        reverted = await c.api.wait_server(uuid, "ACTIVE")
        assert _flavor(reverted) == ("m1.nano", 1, 64)

        before = reverted["OS-EXT-SRV-ATTR:host"]
        await osc("server", "migrate", "--wait", "cli-vm")
        migrated = await show()
        assert migrated["status"] == "VERIFY_RESIZE"
        assert migrated["OS-EXT-SRV-ATTR:host"] != before
        await osc("server", "resize", "confirm", "cli-vm")
        await c.api.wait_server(uuid, "ACTIVE")
        listed = json.loads(await osc("server", "migration", "list", "-f", "json"))
        assert sorted(m["Status"] for m in listed) == ["confirmed", "reverted"]


async def test_migration_disks_need_a_capability(tmp_path: Path) -> None:
    async with cloud(tmp_path, 0) as c:
        path = "/migration-disks/0b6c2a4e-1d6e-4a8e-9a55-2f3d2f7d9a10"
        status, body, _ = await c.api.get(path)  # a Keystone token is not enough
        assert status == 403, body
        status, _, _ = await c.api.put(
            path, data=b"x", headers={"X-Mininova-Capability": "mnc_forged"}, token=False
        )
        assert status in (401, 403)


async def test_restart_recovery_rolls_a_move_in_flight_back(tmp_path: Path) -> None:
    """A controller restart finds a move cut short: it goes back to its source."""
    async with cloud(tmp_path, 1, allow_resize_to_same_host=True) as c:
        uuid = (await c.boot())["id"]
        store = c.controller.store
        inst = await instances.get(store, uuid)
        assert inst is not None
        now = timeutil.now_iso()
        # what the conductor had written when the controller stopped mid-move
        await migrations.create(
            store,
            {
                "uuid": "9c3e4f0a-4c1b-4c55-8a34-61c3a0f1c2d7",
                "instance_uuid": uuid,
                "project_id": inst["project_id"],
                "user_id": inst["user_id"],
                "migration_type": "resize",
                "source_compute": "host1",
                "dest_compute": "host1",
                "old_flavor": inst["flavor"],
                "new_flavor": {**inst["flavor"], "id": "3", "name": "m1.tiny", "ram": 512},
                "status": "migrating",
                "created_at": now,
                "updated_at": now,
            },
        )
        await instances.update(store, uuid, task_state="resize_migrating", memory_mb=512)
        await allocations.claim(store, "9c3e4f0a-4c1b-4c55-8a34-61c3a0f1c2d7", "host1", 1, 64, 1)
        await allocations.claim(store, uuid, "host1", 1, 512, 1)

        await c.controller.conductor.recover_moves()
        server = await c.api.wait_server(uuid, "ACTIVE")
        assert server["OS-EXT-STS:task_state"] is None
        assert _flavor(server) == ("m1.nano", 1, 64)
        assert await c.claims() == {uuid: ("host1", 1, 64)}
        assert await c.used() == (1, 64)
        assert (await c.migrations())[0]["status"] == "error"


async def test_delete_during_a_move_leaves_nothing(tmp_path: Path) -> None:
    async with cloud(tmp_path, 2) as c:
        server = await c.boot(metadata={"fake_finish_resize": "slow"})
        uuid = server["id"]
        status, _ = await c.action(uuid, {"migrate": None})
        assert status == 202
        await _wait_task(
            c, uuid, lambda s: s["OS-EXT-STS:task_state"] == "resize_finish", "the move to finish"
        )
        status, _, _ = await c.api.delete(f"{SERVERS}/{uuid}")
        assert status == 204

        async def gone() -> bool:
            return (await c.api.get(f"{SERVERS}/{uuid}"))[0] == 404

        await wait_for(gone, 10, 0.05, f"{uuid} to be deleted")
        for driver in c.drivers.values():
            assert await driver.list_guests() == [] and driver.kept_aside() == []
        assert await c.claims() == {}
        assert (await c.migrations())[0]["status"] == "error"
