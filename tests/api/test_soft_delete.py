"""Soft delete (reclaim_instance_interval > 0) in-process with one fake agent: DELETE powers the
guest off and keeps it SOFT_DELETED with its resources, `restore`, `forceDelete`, the reaper
driven by a fake clock, and the plain delete when the interval is 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.controller import Controller
from mininova.store import instances
from mininova.virt.driver import RUNNING, SHUTDOWN
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.kit.clock import FakeClock
from tests.kit.fake_cloud import fake_agent, running_controller
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"
INTERVAL = 600  # well inside the Keystone token lifetime, which the fake clock also moves


@pytest.fixture
async def controller(
    tmp_path: Path, database_url: str | None, fake_clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[Controller]:
    """The in-process controller with soft delete on (`indirect` param: another interval)."""
    interval = getattr(request, "param", INTERVAL)
    async with running_controller(
        tmp_path, database_url, reclaim_instance_interval=interval
    ) as ctl:
        yield ctl


@pytest.fixture
async def host(api: ApiClient, controller: Controller, tmp_path: Path) -> AsyncIterator[FakeDriver]:
    async with fake_agent(controller, tmp_path) as driver:
        yield driver


async def _active_server(api: ApiClient, name: str = "vm") -> str:
    image = await api.upload_image()
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    status, created, _ = await api.post(SERVERS, json=body, version="2.100")
    assert status == 202, created
    server = await api.wait_server(created["server"]["id"], "ACTIVE", "ERROR")
    assert server["status"] == "ACTIVE", server.get("fault")
    return str(server["id"])


async def _usage(api: ApiClient) -> tuple[int, int]:
    """(instances the project's quota counts, instances holding a host allocation)."""
    _, limits, _ = await api.get("/compute/v2.1/limits")
    _, hyps, _ = await api.get("/compute/v2.1/os-hypervisors/detail", version="2.87")
    placed = sum(h["running_vms"] for h in hyps["hypervisors"])
    return limits["limits"]["absolute"]["totalInstancesUsed"], placed


async def _action(api: ApiClient, uuid: str, body: dict) -> tuple[int, dict]:
    status, reply, _ = await api.post(f"{SERVERS}/{uuid}/action", json=body)
    return status, reply


async def _actions(api: ApiClient, uuid: str) -> list[dict]:
    """The server's instance actions (oldest first), each with its events."""
    _, listing, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions", version="2.51")
    found = []
    for action in reversed(listing["instanceActions"]):
        _, one, _ = await api.get(
            f"{SERVERS}/{uuid}/os-instance-actions/{action['request_id']}", version="2.51"
        )
        found.append(one["instanceAction"])
    return found


async def _soft_delete(api: ApiClient, uuid: str) -> dict:
    """DELETE the server (204) and wait for it to read SOFT_DELETED."""
    status, _, _ = await api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    return await api.wait_server(uuid, "SOFT_DELETED")


async def _wait_gone(api: ApiClient, uuid: str) -> None:
    async def gone() -> bool:
        return (await api.get(f"{SERVERS}/{uuid}"))[0] == 404

    await wait_for(gone, 10, 0.05, f"{uuid} to be deleted")


async def test_soft_delete_then_restore(api: ApiClient, host: FakeDriver) -> None:
    uuid = await _active_server(api)
    assert await _usage(api) == (1, 1)

    server = await _soft_delete(api, uuid)
    assert server["OS-EXT-STS:vm_state"] == "soft-delete"
    assert server["OS-EXT-STS:task_state"] is None
    assert (await host.get_info(uuid)).power_state == SHUTDOWN  # kept, powered off
    assert await _usage(api) == (1, 1)  # quota and host allocation stay held

    # Still listed to its owner, and selected by the status filter.
    _, listed, _ = await api.get(f"{SERVERS}/detail")
    assert [s["status"] for s in listed["servers"] if s["id"] == uuid] == ["SOFT_DELETED"]
    _, soft, _ = await api.get(f"{SERVERS}?status=SOFT_DELETED")
    assert [s["id"] for s in soft["servers"]] == [uuid]
    _, active, _ = await api.get(f"{SERVERS}?status=ACTIVE")
    assert active["servers"] == []

    # Power actions are refused in this state; a second DELETE leaves it as it is.
    status, reply = await _action(api, uuid, {"os-start": None})
    assert status == 409, reply
    assert (await _soft_delete(api, uuid))["status"] == "SOFT_DELETED"

    status, _ = await _action(api, uuid, {"restore": None})
    assert status == 202
    server = await api.wait_server(uuid, "ACTIVE")
    assert server["OS-EXT-STS:power_state"] == RUNNING
    assert (await host.get_info(uuid)).power_state == RUNNING

    actions = await _actions(api, uuid)
    assert [a["action"] for a in actions] == ["create", "delete", "restore"]
    delete, restore = actions[1], actions[2]
    assert [(e["event"], e["result"]) for e in delete["events"]] == [
        ("compute_soft_delete_instance", "Success")
    ]
    assert [(e["event"], e["result"]) for e in restore["events"]] == [
        ("compute_restore_instance", "Success")
    ]

    # Restore only starts from SOFT_DELETED.
    status, reply = await _action(api, uuid, {"restore": None})
    assert status == 409
    assert (
        "Cannot 'restore' instance while it is in vm_state active"
        in reply["conflictingRequest"]["message"]
    )


async def test_force_delete_deletes_now(
    api: ApiClient, host: FakeDriver, controller: Controller
) -> None:
    uuid = await _active_server(api)
    await _soft_delete(api, uuid)

    status, _ = await _action(api, uuid, {"forceDelete": None})
    assert status == 202
    await _wait_gone(api, uuid)
    assert await host.list_guests() == []
    assert await _usage(api) == (0, 0)
    recorded = await instances.list_actions(controller.store, uuid)  # newest first
    assert [a["action"] for a in recorded] == ["forceDelete", "delete", "create"]
    status, reply = await _action(api, uuid, {"restore": None})
    assert status == 404, reply


async def test_force_delete_of_an_active_server(api: ApiClient, host: FakeDriver) -> None:
    uuid = await _active_server(api)
    status, _ = await _action(api, uuid, {"forceDelete": None})
    assert status == 202
    await _wait_gone(api, uuid)
    assert await host.list_guests() == []
    _, admin_view, _ = await api.get(f"{SERVERS}/detail")
    assert all(s["id"] != uuid for s in admin_view["servers"])


async def test_reaper_deletes_only_old_soft_deleted_servers(
    api: ApiClient, host: FakeDriver, controller: Controller, fake_clock: FakeClock
) -> None:
    old = await _active_server(api, "old")
    kept = await _active_server(api, "kept")
    await _soft_delete(api, old)

    assert controller.services is not None
    reaper = controller.services.conductor
    fake_clock.advance_wall(INTERVAL - 1)
    assert await reaper.reclaim_instances() == []  # not old enough yet
    await _soft_delete(api, kept)

    fake_clock.advance_wall(2)  # `old` is now INTERVAL + 1 s old, `kept` only 2 s
    assert await reaper.reclaim_instances() == [old]
    assert (await api.get(f"{SERVERS}/{old}"))[0] == 404
    assert [g.uuid for g in await host.list_guests()] == [kept]
    assert await _usage(api) == (1, 1)
    assert (await api.wait_server(kept, "SOFT_DELETED"))["status"] == "SOFT_DELETED"

    # A restored server is never reaped, however old its delete.
    status, _ = await _action(api, kept, {"restore": None})
    assert status == 202
    await api.wait_server(kept, "ACTIVE")
    fake_clock.advance_wall(INTERVAL * 2)
    assert await reaper.reclaim_instances() == []
    assert (await api.wait_server(kept, "ACTIVE"))["status"] == "ACTIVE"


async def test_another_projects_server_is_404(
    api: ApiClient, member_api: ApiClient, host: FakeDriver
) -> None:
    uuid = await _active_server(api)
    await _soft_delete(api, uuid)
    for body in ({"restore": None}, {"forceDelete": None}):
        status, reply = await _action(member_api, uuid, body)
        assert status == 404, reply
    _, listed, _ = await member_api.get(f"{SERVERS}/detail")
    assert listed["servers"] == []
    assert (await api.wait_server(uuid, "SOFT_DELETED"))["status"] == "SOFT_DELETED"


async def test_owner_restores_own_server(member_api: ApiClient, host: FakeDriver) -> None:
    uuid = await _active_server(member_api)
    status, _, _ = await member_api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    await member_api.wait_server(uuid, "SOFT_DELETED")
    status, _ = await _action(member_api, uuid, {"restore": None})
    assert status == 202
    await member_api.wait_server(uuid, "ACTIVE")


async def test_server_without_host_is_deleted_at_once(api: ApiClient) -> None:
    """No compute host: the build ends in ERROR, and ERROR servers are not soft-deleted."""
    image = await api.upload_image()
    body = {"server": {"name": "nohost", "imageRef": image, "flavorRef": "1", "networks": "none"}}
    _, created, _ = await api.post(SERVERS, json=body)
    uuid = created["server"]["id"]
    await api.wait_server(uuid, "ERROR")
    status, _, _ = await api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    await _wait_gone(api, uuid)


@pytest.mark.parametrize("controller", [0], indirect=True)
async def test_interval_zero_deletes_at_once(api: ApiClient, host: FakeDriver) -> None:
    uuid = await _active_server(api)
    status, _, _ = await api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    await _wait_gone(api, uuid)
    assert await host.list_guests() == []
    assert await _usage(api) == (0, 0)
