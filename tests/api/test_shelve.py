"""Shelve, shelveOffload and unshelve against an in-process controller and one fake agent:
the snapshot image, the host freed, unshelve scheduling anew, state conflicts, isolation,
policies, shelved_offload_time (-1, and > 0 with the periodic offload on a fake clock), and
the real `openstack` CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.controller import Controller
from mininova.store import allocations
from mininova.store import instances as instance_rows
from mininova.virt.fake import FakeDriver
from tests.api.cli import run_openstack
from tests.conftest import ApiClient
from tests.kit.clock import FakeClock
from tests.kit.fake_cloud import fake_agent, running_controller
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"
IMAGES = "/image/v2/images"
HOST = "node1"


@pytest.fixture
def offload_time() -> int:
    """The controller's `shelved_offload_time` (a test parametrizes it to change it)."""
    return 0


@pytest.fixture
async def controller(
    tmp_path: Path, database_url: str | None, offload_time: int
) -> AsyncIterator[Controller]:
    async with running_controller(
        tmp_path,
        database_url,
        shelved_offload_time=offload_time,
        shelved_poll_interval=0.05,
    ) as ctl:
        yield ctl


@pytest.fixture
async def driver(
    api: ApiClient, controller: Controller, tmp_path: Path
) -> AsyncIterator[FakeDriver]:
    """One fake agent, up."""
    async with fake_agent(controller, tmp_path, HOST, api) as fake:
        yield fake


async def _boot(client: ApiClient, image: str, name: str = "vm") -> str:
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    status, created, _ = await client.post(SERVERS, json=body, version="2.100")
    assert status == 202, created
    uuid = created["server"]["id"]
    server = await client.wait_server(uuid, "ACTIVE", "ERROR")
    assert server["status"] == "ACTIVE", server.get("fault")
    return uuid


async def _settled(client: ApiClient, uuid: str, *statuses: str) -> dict:
    """The server once its status is one of `statuses` with no task running."""
    last: dict = {}

    async def reached() -> dict | None:
        _, body, _ = await client.get(f"{SERVERS}/{uuid}", version="2.100")
        last["server"] = server = body["server"]
        done = server["status"] in statuses and server["OS-EXT-STS:task_state"] is None
        return server if done else None

    return await wait_for(reached, 15, 0.05, lambda: f"{uuid} to settle in {statuses}: {last}")


async def _action(
    client: ApiClient, uuid: str, body: dict, version: str | None = None
) -> tuple[int, dict | None]:
    status, answer, _ = await client.post(f"{SERVERS}/{uuid}/action", json=body, version=version)
    return status, answer


async def _guests(driver: FakeDriver) -> dict[str, int]:
    return {g.uuid: g.power_state for g in await driver.list_guests()}


async def _claimed(controller: Controller, uuid: str) -> bool:
    assert controller.store is not None
    return any(c["instance_uuid"] == uuid for c in await allocations.all_claims(controller.store))


async def _images_named(client: ApiClient, name: str) -> list[dict]:
    _, body, _ = await client.get(f"{IMAGES}?name={name}")
    return body["images"]


async def _events(client: ApiClient, uuid: str, action: str) -> list[tuple[str, str]]:
    _, actions, _ = await client.get(f"{SERVERS}/{uuid}/os-instance-actions", version="2.84")
    request_id = next(a["request_id"] for a in actions["instanceActions"] if a["action"] == action)
    _, shown, _ = await client.get(
        f"{SERVERS}/{uuid}/os-instance-actions/{request_id}", version="2.84"
    )
    return [(e["event"], e["result"]) for e in shown["instanceAction"]["events"]]


async def test_shelve_offloads_then_unshelve_schedules_anew(
    api: ApiClient, member_api: ApiClient, controller: Controller, driver: FakeDriver
) -> None:
    image = await api.upload_image("cirros")
    uuid = await _boot(api, image)
    assert uuid in await _guests(driver)

    # wrong states and another project's server
    assert (await _action(api, uuid, {"unshelve": None}))[0] == 409
    status, err = await _action(api, uuid, {"shelveOffload": None})
    assert status == 409 and "vm_state active" in err["conflictingRequest"]["message"]
    assert (await _action(member_api, uuid, {"shelve": None}))[0] == 404

    status, answer = await _action(api, uuid, {"shelve": None})
    assert status == 202 and answer is None
    server = await _settled(api, uuid, "SHELVED_OFFLOADED", "ERROR")
    assert server["status"] == "SHELVED_OFFLOADED", server.get("fault")
    assert server["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    assert server["OS-EXT-STS:task_state"] is None
    assert server["OS-EXT-STS:power_state"] == 0
    assert server["OS-EXT-SRV-ATTR:host"] is None
    assert server["OS-EXT-SRV-ATTR:hypervisor_hostname"] is None

    # the snapshot image: private, the server's project's, uploaded
    (snap,) = await _images_named(api, "vm-shelved")
    assert snap["status"] == "active" and snap["visibility"] == "private"
    assert snap["owner"] == api.project_id
    assert snap["instance_uuid"] == uuid and snap["image_type"] == "snapshot"
    assert controller.store is not None
    row = await instance_rows.get(controller.store, uuid)
    assert row is not None
    assert row["system_metadata"]["shelved_image_id"] == snap["id"]
    assert row["system_metadata"]["shelved_host"] == HOST
    assert row["system_metadata"]["shelved_at"]

    # the host is free: no guest, no claim; the quota still counts the server (Nova's
    # default counting from the instances table)
    assert uuid not in await _guests(driver)
    assert not await _claimed(controller, uuid)
    _, limits, _ = await api.get("/compute/v2.1/limits")
    assert limits["limits"]["absolute"]["totalInstancesUsed"] == 1
    assert await _events(api, uuid, "shelve") == [
        ("compute_shelve_instance", "Success"),
        ("compute_shelve_offload_instance", "Success"),
    ]

    assert (await _action(api, uuid, {"shelve": None}))[0] == 409
    status, err = await _action(
        api, uuid, {"unshelve": {"availability_zone": "nowhere"}}, version="2.77"
    )
    assert status == 400 and "availability zone" in err["badRequest"]["message"]
    status, err = await _action(api, uuid, {"unshelve": {}}, version="2.77")
    assert status == 400

    status, _ = await _action(api, uuid, {"unshelve": {"availability_zone": "nova"}}, "2.77")
    assert status == 202
    server = await _settled(api, uuid, "ACTIVE", "ERROR", "SHELVED_OFFLOADED")
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["OS-EXT-SRV-ATTR:host"] == HOST
    assert server["OS-EXT-AZ:availability_zone"] == "nova"
    assert server["image"]["id"] == image  # the server keeps its image; it booted the snapshot
    assert (await driver.get_info(uuid)).power_state == 1
    _, console, _ = await api.post(f"{SERVERS}/{uuid}/action", json={"os-getConsoleOutput": {}})
    assert "image=vm-shelved" in console["output"]
    assert "hostname=vm" in console["output"]
    assert await _claimed(controller, uuid)
    # the shelved image is gone, and so are the shelved keys
    assert (await api.get(f"{IMAGES}/{snap['id']}"))[0] == 404
    row = await instance_rows.get(controller.store, uuid)
    assert row is not None and not {"shelved_image_id", "shelved_at"} & set(row["system_metadata"])
    assert [e for e, _ in await _events(api, uuid, "unshelve")] == [
        "schedule_instances",
        "compute_unshelve_instance",
    ]


async def test_failed_unshelve_stays_offloaded_with_a_fault(
    api: ApiClient, controller: Controller, driver: FakeDriver
) -> None:
    """The fake driver fails spawns of images named fail-*: the shelved image of a server
    named fail-1 is fail-1-shelved, so its unshelve fails on the only host."""
    image = await api.upload_image("cirros")
    uuid = await _boot(api, image, "fail-1")
    assert (await _action(api, uuid, {"shelve": None}))[0] == 202
    await _settled(api, uuid, "SHELVED_OFFLOADED")
    assert (await _action(api, uuid, {"unshelve": None}))[0] == 202
    server = await _settled(api, uuid, "SHELVED_OFFLOADED", "ACTIVE", "ERROR")
    assert server["status"] == "SHELVED_OFFLOADED"
    assert server["OS-EXT-SRV-ATTR:host"] is None
    assert uuid not in await _guests(driver)
    assert not await _claimed(controller, uuid)
    assert controller.store is not None
    row = await instance_rows.get(controller.store, uuid)
    assert row is not None and "fake spawn failure" in row["fault"]["message"]
    assert row["system_metadata"]["shelved_image_id"]  # kept for the next try
    assert ("compute_unshelve_instance", "Error") in await _events(api, uuid, "unshelve")
    (snap,) = await _images_named(api, "fail-1-shelved")
    assert snap["status"] == "active"

    # Deleting the shelved server takes its snapshot along: nothing could unshelve it now.
    status, _, _ = await api.delete(f"/compute/v2.1/servers/{uuid}")
    assert status == 204

    async def image_gone() -> bool:
        return await _images_named(api, "fail-1-shelved") == []

    await wait_for(image_gone, 10, 0.05, "the shelved image to go with its server")


@pytest.mark.parametrize("offload_time", [-1])
async def test_offload_time_minus_one_keeps_shelved(
    api: ApiClient, member_api: ApiClient, controller: Controller, driver: FakeDriver
) -> None:
    image = await member_api.upload_image("own")
    uuid = await _boot(member_api, image, "mine")

    status, _ = await _action(member_api, uuid, {"shelve": None})
    assert status == 202
    server = await _settled(member_api, uuid, "SHELVED", "SHELVED_OFFLOADED", "ERROR")
    assert server["status"] == "SHELVED"
    # still on its host, powered off, still claimed
    assert (await _guests(driver))[uuid] == 4
    assert await _claimed(controller, uuid)
    admin_view = await _settled(api, uuid, "SHELVED")
    assert admin_view["OS-EXT-SRV-ATTR:host"] == HOST
    # the power-state sync leaves a shelved, powered-off guest alone (no SHUTOFF)
    assert controller.bus is not None
    await controller.bus.call(
        "conductor", "sync_power_states", host=HOST, guests=[{"uuid": uuid, "power_state": 4}]
    )
    _, body, _ = await member_api.get(f"{SERVERS}/{uuid}")
    assert body["server"]["status"] == "SHELVED"
    # a zone or a host is only for SHELVED_OFFLOADED
    status, err = await _action(
        member_api, uuid, {"unshelve": {"availability_zone": "nova"}}, "2.77"
    )
    assert status == 409 and "SHELVED_OFFLOADED" in err["conflictingRequest"]["message"]

    # unshelve in place: powered on where it is, the image deleted
    (snap,) = await _images_named(member_api, "mine-shelved")
    status, _ = await _action(member_api, uuid, {"unshelve": None})
    assert status == 202
    server = await _settled(api, uuid, "ACTIVE", "ERROR")
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == HOST
    assert (await _guests(driver))[uuid] == 1
    assert (await api.get(f"{IMAGES}/{snap['id']}"))[0] == 404

    # shelve again; shelveOffload is admin-only
    assert (await _action(member_api, uuid, {"shelve": None}))[0] == 202
    await _settled(member_api, uuid, "SHELVED")
    status, err = await _action(member_api, uuid, {"shelveOffload": None})
    assert status == 403 and "shelve_offload" in err["forbidden"]["message"]
    status, _ = await _action(api, uuid, {"shelveOffload": None})
    assert status == 202
    server = await _settled(api, uuid, "SHELVED_OFFLOADED", "ERROR")
    assert server["status"] == "SHELVED_OFFLOADED"
    assert uuid not in await _guests(driver)
    assert not await _claimed(controller, uuid)
    # unshelve to a host (2.91) is admin-only too
    status, _ = await _action(member_api, uuid, {"unshelve": {"host": HOST}}, "2.91")
    assert status == 403
    status, err = await _action(api, uuid, {"unshelve": {"host": "nohost"}}, "2.91")
    assert status == 400 and "nohost" in err["badRequest"]["message"]
    status, _ = await _action(api, uuid, {"unshelve": {"host": HOST}}, "2.91")
    assert status == 202
    server = await _settled(api, uuid, "ACTIVE", "ERROR", "SHELVED_OFFLOADED")
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == HOST


@pytest.mark.parametrize("offload_time", [60])
async def test_periodic_offload_after_shelved_offload_time(
    api: ApiClient, controller: Controller, driver: FakeDriver, fake_clock: FakeClock
) -> None:
    image = await api.upload_image("cirros")
    uuid = await _boot(api, image)
    assert (await _action(api, uuid, {"shelve": None}))[0] == 202
    await _settled(api, uuid, "SHELVED")
    assert controller.bus is not None
    # not due yet: one explicit pass of the poller offloads nothing
    assert await controller.bus.call("conductor", "poll_shelved_instances") == 0
    fake_clock.advance_wall(30)
    assert await controller.bus.call("conductor", "poll_shelved_instances") == 0
    _, body, _ = await api.get(f"{SERVERS}/{uuid}")
    assert body["server"]["status"] == "SHELVED"
    assert uuid in await _guests(driver)
    # past shelved_offload_time the periodic task (every 0.05 s here) offloads it
    fake_clock.advance_wall(31)
    server = await _settled(api, uuid, "SHELVED_OFFLOADED", "ERROR")
    assert server["status"] == "SHELVED_OFFLOADED"
    assert uuid not in await _guests(driver)


@pytest.mark.parametrize("offload_time", [-1])
@pytest.mark.first_backend_only
async def test_openstack_cli_shelve_offload_unshelve(
    api: ApiClient, controller: Controller, driver: FakeDriver
) -> None:
    image = await api.upload_image("cirros")
    uuid = await _boot(api, image, "cli1")

    rc, _, err = await run_openstack(controller, "server", "shelve", "--wait", "cli1")
    assert rc == 0, err
    assert (await _settled(api, uuid, "SHELVED"))["OS-EXT-SRV-ATTR:host"] == HOST
    rc, _, err = await run_openstack(controller, "server", "unshelve", "--wait", "cli1")
    assert rc == 0, err
    assert (await _settled(api, uuid, "ACTIVE"))["OS-EXT-SRV-ATTR:host"] == HOST

    # (OSC skips a server that is already SHELVED, so --offload starts from ACTIVE)
    rc, _, err = await run_openstack(controller, "server", "shelve", "--offload", "--wait", "cli1")
    assert rc == 0, err
    assert (await _settled(api, uuid, "SHELVED_OFFLOADED"))["OS-EXT-SRV-ATTR:host"] is None
    assert uuid not in await _guests(driver)
    assert [i["name"] for i in await _images_named(api, "cli1-shelved")] == ["cli1-shelved"]

    rc, _, err = await run_openstack(
        controller, "server", "unshelve", "--availability-zone", "nova", "--wait", "cli1"
    )
    assert rc == 0, err
    assert (await _settled(api, uuid, "ACTIVE"))["OS-EXT-SRV-ATTR:host"] == HOST
    assert await _images_named(api, "cli1-shelved") == []


@pytest.mark.parametrize(
    ("action", "status"), [("os-stop", "SHUTOFF"), ("pause", "PAUSED"), ("suspend", "SUSPENDED")]
)
async def test_shelve_from_stopped_paused_suspended(
    api: ApiClient, driver: FakeDriver, action: str, status: str
) -> None:
    image = await api.upload_image("cirros")
    uuid = await _boot(api, image)
    assert (await _action(api, uuid, {action: None}))[0] == 202
    await _settled(api, uuid, status)
    assert (await _action(api, uuid, {"shelve": None}))[0] == 202
    server = await _settled(api, uuid, "SHELVED_OFFLOADED", "ERROR", status)
    assert server["status"] == "SHELVED_OFFLOADED", server.get("fault")
    assert uuid not in await _guests(driver)
