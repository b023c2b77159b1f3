"""The conductor's soft delete, restore and reaper against the fake agent hub: what happens
when the host is unreachable, when the agent's order fails, and when a restore races the
reaper."""

from __future__ import annotations

from pathlib import Path

import pytest

from mininova import instance_states as st
from mininova.config import ServeConfig
from mininova.protocol import ProtocolError
from mininova.store import Store, soft_deletes
from mininova.store import instances as db
from mininova.timeutil import now_iso
from tests.conductor.test_conductor_fake_hub import Cloud, add_host, make_cloud
from tests.kit.clock import FakeClock

INTERVAL = 300


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    config = ServeConfig(data_dir=tmp_path, reclaim_instance_interval=INTERVAL)
    cloud = make_cloud(store, config)
    await add_host(store, "n1")
    return cloud


async def _soft_deleting(cloud: Cloud) -> str:
    """An ACTIVE instance on n1 as the API leaves it after a soft DELETE."""
    uuid = await cloud.instance(
        vm_state=st.ACTIVE, task_state=st.SOFT_DELETING, host="n1", power_state=st.RUNNING
    )
    await soft_deletes.set_deleted_at(cloud.store, uuid, now_iso())
    await db.start_action(cloud.store, uuid, "delete", "req-1", "u1", "p1")
    return uuid


async def _events(cloud: Cloud, uuid: str) -> list[tuple[str, str]]:
    action = await db.latest_action(cloud.store, uuid)
    assert action is not None
    return [(e["event"], e["result"]) for e in await db.action_events(cloud.store, action["id"])]


async def test_soft_delete_powers_off_and_keeps_the_guest(cloud: Cloud) -> None:
    uuid = await _soft_deleting(cloud)
    await cloud.conductor.handle("soft_delete_instance", {"uuid": uuid})
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["power_state"]) == (
        st.SOFT_DELETED,
        None,
        st.SHUTDOWN,
    )
    assert inst["deleted"] == 0 and inst["deleted_at"]
    assert [(o.host, o.params) for o in cloud.hub.orders] == [("n1", {"uuid": uuid})]
    assert cloud.hub.orders[0].method == "power_off"
    assert await _events(cloud, uuid) == [("compute_soft_delete_instance", "Success")]


async def test_soft_delete_with_the_host_down_still_lands(cloud: Cloud) -> None:
    cloud.hub.down.add("n1")
    uuid = await _soft_deleting(cloud)
    await cloud.conductor.do_soft_delete_instance(uuid)
    inst = await cloud.get(uuid)
    # Nova's local soft delete: deleted all the same; the guest's last known power stays.
    assert (inst["vm_state"], inst["task_state"], inst["power_state"]) == (
        st.SOFT_DELETED,
        None,
        st.RUNNING,
    )
    assert await _events(cloud, uuid) == [("compute_soft_delete_instance", "Error")]


async def test_failed_power_off_puts_the_server_back(cloud: Cloud) -> None:
    cloud.hub.answers["power_off"] = ProtocolError("failed", "libvirt said no")
    uuid = await _soft_deleting(cloud)
    await cloud.conductor.do_soft_delete_instance(uuid)
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["deleted_at"]) == (st.ACTIVE, None, None)
    assert await _events(cloud, uuid) == [("compute_soft_delete_instance", "Error")]


async def test_failed_restore_stays_soft_deleted_and_reclaimable(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    uuid = await _soft_deleting(cloud)
    await cloud.conductor.do_soft_delete_instance(uuid)
    await db.update(cloud.store, uuid, task_state=st.RESTORING)
    cloud.hub.answers["power_on"] = ProtocolError("failed", "no memory")
    await cloud.conductor.do_restore_instance(uuid)
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.SOFT_DELETED, None)
    assert inst["deleted_at"]
    fake_clock.advance(INTERVAL + 1)
    assert await cloud.conductor.do_reclaim_instances() == [uuid]
    assert (await cloud.get(uuid))["deleted"] == 1
    assert cloud.hub.sent("destroy")[0].params == {"uuid": uuid}


async def test_reaper_leaves_a_server_being_restored(cloud: Cloud, fake_clock: FakeClock) -> None:
    uuid = await _soft_deleting(cloud)
    await cloud.conductor.do_soft_delete_instance(uuid)
    await db.update(cloud.store, uuid, task_state=st.RESTORING)  # the API started a restore
    fake_clock.advance(INTERVAL + 1)
    assert await cloud.conductor.do_reclaim_instances() == []
    await cloud.conductor.do_restore_instance(uuid)
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["power_state"], inst["deleted_at"]) == (
        st.ACTIVE,
        st.RUNNING,
        None,
    )
    assert cloud.hub.sent("destroy") == []


async def test_restart_resumes_soft_delete_and_restore(cloud: Cloud) -> None:
    deleting = await _soft_deleting(cloud)
    restoring = await cloud.instance(vm_state=st.SOFT_DELETED, task_state=st.RESTORING, host="n1")
    await cloud.conductor.recover()
    casts = cloud.conductor.conductor.calls  # type: ignore[attr-defined]
    assert sorted(casts) == sorted(
        [("soft_delete_instance", (deleting,)), ("restore_instance", (restoring,))]
    )
