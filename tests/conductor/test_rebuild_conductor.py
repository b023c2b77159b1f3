"""The conductor's rebuild against the fake agent hub: the `rebuild` order (full spec, image
capability, power_on), landing per origin state, and ERROR with a fault on failure."""

from __future__ import annotations

from mininova import instance_states as st
from mininova.protocol import ProtocolError
from mininova.store import instances as db
from tests.conductor.test_conductor_fake_hub import IMAGE, Cloud, add_host, cloud  # noqa: F401


async def _rebuilding(cloud: Cloud, vm_state: str) -> str:  # noqa: F811
    await add_host(cloud.store, "n1")
    uuid = await cloud.instance(
        vm_state=vm_state,
        task_state=st.REBUILDING,
        host="n1",
        power_state=st.RUNNING if vm_state == st.ACTIVE else st.SHUTDOWN,
        addresses=[{"addr": "10.0.0.5"}],
        metadata={"role": "web"},
    )
    await db.start_action(cloud.store, uuid, "rebuild", "req-1", "u1", "p1")
    return uuid


async def _event(cloud: Cloud, uuid: str) -> dict:  # noqa: F811
    action = await db.get_action(cloud.store, uuid, "req-1")
    assert action is not None
    (event,) = await db.action_events(cloud.store, action["id"])
    return event


async def test_rebuild_orders_the_same_host_with_the_full_spec(cloud: Cloud) -> None:  # noqa: F811
    cloud.hub.answers["rebuild"] = {"power_state": st.RUNNING, "addresses": [{"addr": "10.0.0.5"}]}
    uuid = await _rebuilding(cloud, st.ACTIVE)
    await cloud.conductor.handle("rebuild_instance", {"uuid": uuid, "preserve_ephemeral": False})

    (order,) = cloud.hub.sent("rebuild")
    assert order.host == "n1" and order.params["power_on"] is True
    spec = order.params["instance"]
    assert spec["uuid"] == uuid and spec["metadata"] == {"role": "web"}
    assert spec["image"]["id"] == IMAGE and spec["image"]["capability"].startswith("mnc_")
    assert spec["mac_address"] == "fa:16:3e:00:00:01"
    assert len(cloud.caps) == 0  # the download capability ended with the order

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["power_state"]) == (
        st.ACTIVE,
        None,
        st.RUNNING,
    )
    assert inst["launched_at"] and inst["fault"] is None
    event = await _event(cloud, uuid)
    assert (event["event"], event["result"]) == ("compute_rebuild_instance", "Success")


async def test_a_stopped_server_is_rebuilt_without_starting(cloud: Cloud) -> None:  # noqa: F811
    cloud.hub.answers["rebuild"] = {"power_state": st.SHUTDOWN, "addresses": []}
    uuid = await _rebuilding(cloud, st.STOPPED)
    await cloud.conductor.handle("rebuild_instance", {"uuid": uuid})

    (order,) = cloud.hub.sent("rebuild")
    assert order.params["power_on"] is False
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["power_state"]) == (
        st.STOPPED,
        None,
        st.SHUTDOWN,
    )
    assert inst["addresses"] == [{"addr": "10.0.0.5"}]  # kept when the agent reports none


async def test_agent_failure_is_error_with_a_fault(cloud: Cloud) -> None:  # noqa: F811
    cloud.hub.answers["rebuild"] = ProtocolError("failed", "qemu-img exploded")
    uuid = await _rebuilding(cloud, st.ACTIVE)
    await cloud.conductor.handle("rebuild_instance", {"uuid": uuid})

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ERROR, None)
    assert "qemu-img exploded" in inst["fault"]["message"]
    event = await _event(cloud, uuid)
    assert event["result"] == "Error" and "qemu-img exploded" in (event["traceback"] or "")
    assert len(cloud.caps) == 0


async def test_nothing_is_ordered_unless_the_task_is_rebuilding(cloud: Cloud) -> None:  # noqa: F811
    uuid = await _rebuilding(cloud, st.ACTIVE)
    await db.update(cloud.store, uuid, task_state=st.DELETING)
    await cloud.conductor.handle("rebuild_instance", {"uuid": uuid})
    assert cloud.hub.sent("rebuild") == []
    assert (await cloud.get(uuid))["task_state"] == st.DELETING


async def test_a_rebuild_cut_by_a_controller_restart_is_error(cloud: Cloud) -> None:  # noqa: F811
    uuid = await _rebuilding(cloud, st.ACTIVE)
    await cloud.conductor.recover()
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ERROR, None)
    assert "restarted" in inst["fault"]["message"]


def test_state_machine_rows() -> None:
    spec = st.check_action("rebuild", st.ERROR, None)
    assert spec.task_state == st.REBUILDING
    assert spec.landing(st.ACTIVE) == (st.ACTIVE, st.RUNNING)
    assert spec.landing(st.ERROR) == (st.ACTIVE, st.RUNNING)
    assert spec.landing(st.STOPPED) == (st.STOPPED, st.SHUTDOWN)
    for vm in (st.ACTIVE, st.STOPPED, st.ERROR):
        assert st.status(vm, st.REBUILDING) == "REBUILD"
    assert (st.ACTIVE, st.REBUILDING) in (st.vm_states_for_status("rebuild") or [])
