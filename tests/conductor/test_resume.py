"""Work a controller restart cut short is resumed or settled, never left to ERROR blindly.

The conductor over a real store and scheduler with the fake hub (test_conductor_fake_hub):
each test writes the rows a killed controller leaves behind, marks every host disconnected
(as `Controller.start` does), runs `recover()` as the new controller would, and lets hosts
"reconnect" (their compute_nodes row, then the hello's report to the conductor).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mininova import instance_states as st
from mininova.config import ServeConfig
from mininova.store import Store, allocations, hosts
from mininova.store import instances as db
from tests.conductor.test_conductor_fake_hub import (
    Cloud,
    FakeHub,
    Order,
    add_host,
    add_image,
    make_cloud,
)
from tests.kit.clock import FakeClock

ADDR = [{"version": 4, "addr": "10.0.0.7", "mac": "fa:16:3e:00:00:01"}]


def _cloud(store: Store, tmp_path: Path, **settings: Any) -> Cloud:
    config = ServeConfig(
        data_dir=tmp_path, heartbeat_interval=5, spawn_timeout=2, action_timeout=2, **settings
    )
    hub = FakeHub(answers={"spawn": {"power_state": st.RUNNING, "addresses": ADDR}})
    return make_cloud(store, config, hub)


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    await add_image(store)
    return _cloud(store, tmp_path, build_retries=3)


async def _cut_build(cloud: Cloud, task: str, host: str | None) -> str:
    """A build as a killed controller left it: a create action with one open scheduling
    attempt, the claim on `host` (made before the crash)."""
    uuid = await cloud.instance(task_state=task, host=host if task == st.SPAWNING else None)
    await db.start_action(cloud.store, uuid, "create", "req-1", "u1", "p1")
    await db.start_event(cloud.store, uuid, "conductor_schedule_and_build", None)
    if host:
        await allocations.claim(cloud.store, uuid, host, 1, 512, 1)
    return uuid


async def _restart(cloud: Cloud) -> asyncio.Task[None]:
    """The new controller: no agent connected yet, then recover() (as a task: it waits)."""
    await hosts.disconnect_all(cloud.store)
    task = asyncio.create_task(cloud.conductor.recover())
    await asyncio.wait_for(cloud.conductor.taken_over.wait(), 5)  # before any hello
    return task


async def _reconnect(cloud: Cloud, host: str, guests: list[dict[str, Any]]) -> None:
    """The agent of `host` says hello: the hub records the node, then reports its guests."""
    await add_host(cloud.store, host)
    await cloud.conductor.do_host_connected(host, guests)


async def _finish(task: asyncio.Task[None]) -> None:
    await asyncio.wait_for(task, 5)


def _casts(cloud: Cloud) -> list[tuple[str, tuple[Any, ...]]]:
    return cloud.conductor.conductor.calls  # type: ignore[attr-defined]


async def _run_casts(cloud: Cloud) -> None:
    """Deliver the builds recover() cast to the conductor (the bus does it in serve)."""
    for name, args in _casts(cloud):
        if name == "build_instances":
            await cloud.conductor.do_build_instances(*args)


# ---- builds that never reached a host -------------------------------------------------------


async def test_a_build_no_host_had_started_is_built_again_once_its_hosts_are_back(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    await add_host(cloud.store, "n3")  # long dead: its last heartbeat is old
    fake_clock.advance(100)
    await add_host(cloud.store, "n1", memory_mb=8192)
    await add_host(cloud.store, "n2")
    uuid = await _cut_build(cloud, st.SCHEDULING, "n2")  # claimed, not yet spawning
    task = await _restart(cloud)
    assert await cloud.allocation(uuid) is None  # the old claim released
    await _reconnect(cloud, "n2", [])
    assert not task.done() and _casts(cloud) == []  # n1 was up when it stopped too
    await _reconnect(cloud, "n1", [])  # n3 is not waited for
    await _finish(task)
    assert _casts(cloud) == [("build_instances", ([uuid],))]
    await _run_casts(cloud)

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == (st.ACTIVE, None, "n1")
    assert inst["fault"] is None
    assert await cloud.allocation(uuid) == "n1"
    assert [o.host for o in cloud.hub.sent("spawn")] == ["n1"]


# ---- builds that were sent to a host ---------------------------------------------------------


async def test_a_sent_build_whose_guest_runs_lands_active_from_the_hosts_report(
    cloud: Cloud,
) -> None:
    await add_host(cloud.store, "n1")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    task = await _restart(cloud)
    await _reconnect(cloud, "n1", [{"uuid": uuid, "power_state": st.RUNNING, "addresses": ADDR}])
    await _finish(task)

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == (st.ACTIVE, None, "n1")
    assert inst["power_state"] == st.RUNNING and inst["addresses"] == ADDR
    assert inst["launched_at"] and inst["fault"] is None
    assert await cloud.allocation(uuid) == "n1"
    assert cloud.hub.sent("spawn") == [] and cloud.hub.sent("destroy") == []
    action = await db.latest_action(cloud.store, uuid)
    assert action is not None and action["finish_time"] and action["message"] is None


async def test_a_sent_build_whose_guest_is_absent_is_rescheduled(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    task = await _restart(cloud)
    await _reconnect(cloud, "n1", [])  # the spawn never arrived
    await _finish(task)

    assert [(o.method, o.host) for o in cloud.hub.orders if o.method != "network_sync"] == [
        ("destroy", "n1"),  # whatever a still-running spawn leaves goes first
        ("spawn", "n1"),
    ]
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == (st.ACTIVE, None, "n1")
    assert await cloud.allocation(uuid) == "n1"


async def test_a_sent_build_with_no_attempt_left_is_error_naming_the_restart(
    store: Store, tmp_path: Path, cloud: Cloud
) -> None:
    cloud = _cloud(store, tmp_path, build_retries=1)
    await add_host(cloud.store, "n1")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    task = await _restart(cloud)
    await _reconnect(cloud, "n1", [{"uuid": uuid, "power_state": st.SHUTDOWN, "addresses": []}])
    await _finish(task)

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ERROR, None)
    message = inst["fault"]["message"]
    assert f"Build of instance {uuid} on n1 was cut short by a controller restart" in message
    assert "power state 4" in message
    assert await cloud.allocation(uuid) is None
    assert [o.method for o in cloud.hub.orders if o.method != "network_sync"] == ["destroy"]


async def test_a_sent_build_whose_host_never_returns_goes_to_another_host(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    await add_host(cloud.store, "n1")
    await add_host(cloud.store, "n2")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    task = await _restart(cloud)
    await _reconnect(cloud, "n2", [])
    assert not task.done()  # n1 has spawn_timeout to come back
    fake_clock.advance(cloud.config.spawn_timeout + 1)
    await _reconnect(cloud, "n2", [])  # any report wakes the wait up; n1 is overdue
    await _finish(task)

    assert [o.host for o in cloud.hub.sent("spawn")] == ["n2"]
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["host"]) == (st.ACTIVE, "n2")
    assert await cloud.allocation(uuid) == "n2"


async def test_a_sent_build_whose_only_host_never_returns_is_error_naming_it(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    await add_host(cloud.store, "n1")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    task = await _restart(cloud)
    fake_clock.advance(cloud.config.spawn_timeout + 1)
    await cloud.conductor.settle_overdue()  # what the wait does when its timer fires
    await _finish(task)

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ERROR, None)
    assert inst["fault"]["message"].startswith(
        f"Build of instance {uuid} failed on n1: the host did not reconnect within 2s"
    )
    assert "No other host could take it." in inst["fault"]["message"]
    assert await cloud.allocation(uuid) is None


async def test_a_host_that_said_hello_before_recover_is_asked_for_its_guests(
    cloud: Cloud,
) -> None:
    await add_host(cloud.store, "n1")
    uuid = await _cut_build(cloud, st.SPAWNING, "n1")
    cloud.hub.answers["list_guests"] = [{"uuid": uuid, "power_state": st.RUNNING}]
    # n1 is connected already (its hello raced the start-up): recover() asks it
    await asyncio.wait_for(cloud.conductor.recover(), 5)
    assert [o.method for o in cloud.hub.orders if o.method != "network_sync"] == ["list_guests"]
    assert (await cloud.get(uuid))["vm_state"] == st.ACTIVE


# ---- actions ---------------------------------------------------------------------------------


async def test_an_action_cut_by_the_restart_is_settled_or_ordered_again(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1")
    done = await cloud.instance(vm_state=st.ACTIVE, task_state=st.POWERING_OFF, host="n1")
    undone = await cloud.instance(vm_state=st.ACTIVE, task_state=st.POWERING_OFF, host="n1")
    reboot = await cloud.instance(vm_state=st.ACTIVE, task_state=st.REBOOTING, host="n1")
    for uuid in (done, undone, reboot):
        await db.start_action(cloud.store, uuid, "stop", "req-" + uuid, "u1", "p1")
    task = await _restart(cloud)
    guests = [
        {"uuid": done, "power_state": st.SHUTDOWN},
        {"uuid": undone, "power_state": st.RUNNING},
        {"uuid": reboot, "power_state": st.RUNNING},
    ]
    await _reconnect(cloud, "n1", guests)
    await _finish(task)

    ordered = {(o.method, o.params["uuid"]) for o in cloud.hub.orders if "uuid" in o.params}
    assert ordered == {("power_off", undone), ("reboot", reboot)}
    for uuid in (done, undone):
        inst = await cloud.get(uuid)
        assert (inst["vm_state"], inst["task_state"], inst["power_state"]) == (
            st.STOPPED,
            None,
            st.SHUTDOWN,
        )
    inst = await cloud.get(reboot)
    assert (inst["vm_state"], inst["task_state"]) == (st.ACTIVE, None)


async def test_an_action_whose_host_never_returns_is_cleared_with_a_failed_event(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    await add_host(cloud.store, "n1")
    uuid = await cloud.instance(vm_state=st.ACTIVE, task_state=st.POWERING_OFF, host="n1")
    await db.start_action(cloud.store, uuid, "stop", "req-1", "u1", "p1")
    task = await _restart(cloud)
    fake_clock.advance(cloud.config.action_timeout + 1)
    await cloud.conductor.settle_overdue()
    await _finish(task)

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ACTIVE, None)
    action = await db.latest_action(cloud.store, uuid)
    assert action is not None and action["message"] == "Error"
    (event,) = await db.action_events(cloud.store, action["id"])
    assert "did not reconnect" in (event["traceback"] or "")


# ---- guests left on a host the build was moved away from -------------------------------------


async def test_a_guest_on_a_host_its_instance_left_is_reaped_at_hello(cloud: Cloud) -> None:
    await add_host(cloud.store, "n2")
    uuid = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n2")

    def listing(order: Order) -> Any:
        return []

    cloud.hub.answers["list_guests"] = listing
    await _reconnect(cloud, "n1", [{"uuid": uuid, "power_state": st.RUNNING}])
    assert [(o.method, o.host) for o in cloud.hub.orders if o.method != "network_sync"] == [
        ("destroy", "n1")
    ]
    assert (await cloud.get(uuid))["host"] == "n2"  # the instance itself is untouched


async def test_a_spawn_finished_after_its_build_failed_over_is_reaped_at_the_next_sync(
    cloud: Cloud,
) -> None:
    await add_host(cloud.store, "n1")
    await add_host(cloud.store, "n2")
    moved = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n2")
    resizing = await cloud.instance(vm_state=st.ACTIVE, task_state=st.RESIZE_MIGRATING, host="n2")
    unknown = "0b0e5d2e-0000-4000-8000-000000000000"
    guests = [{"uuid": u, "power_state": st.RUNNING} for u in (moved, resizing, unknown)]
    await cloud.conductor.do_sync_power_states("n1", guests)  # a heartbeat of n1
    assert [(o.method, o.host, o.params) for o in cloud.hub.orders] == [
        ("destroy", "n1", {"uuid": moved})  # a moving one and an unknown one are left alone
    ]
