"""The conductor against a fake agent hub: orders are recorded and answered in memory.

A real store and the real scheduler (its claims are what the conductor releases), a fake hub
standing in for the agents, and recording stand-ins for the bus clients the conductor casts
to (consoleauth, images, itself). No websocket, no agent, no controller.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mininova import instance_states as st
from mininova.agenthub import HostUnavailable
from mininova.conductor import Conductor
from mininova.config import ServeConfig
from mininova.protocol import ProtocolError
from mininova.scheduler import Scheduler
from mininova.store import Store, allocations, hosts, images
from mininova.store import instances as db
from mininova.timeutil import now_iso
from mininova.trust.capabilities import Capabilities
from tests.kit.clock import FakeClock

IMAGE = "img-1"
FLAVOR = {"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1}


@dataclass
class Order:
    host: str
    method: str
    params: dict[str, Any]
    timeout: float


@dataclass
class FakeHub:
    """Records every order; answers from `answers[method]` (a value, an exception to raise,
    or a callable `(order) -> value`). Hosts in `down` have no link."""

    orders: list[Order] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    state_version: int = 2  # the network state version the hosts' agents take

    async def call(
        self, host: str, method: str, params: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> Any:
        order = Order(host, method, dict(params or {}), timeout)
        self.orders.append(order)
        if host in self.down:
            raise HostUnavailable(host)
        answer = self.answers.get(method, {})
        if callable(answer):
            answer = answer(order)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def sent(self, method: str) -> list[Order]:
        return [o for o in self.orders if o.method == method]

    def network_state_version(self, host: str) -> int:
        return self.state_version


@dataclass
class Casts:
    """Stands in for a typed bus client: every method call is recorded as a cast."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args + tuple(kwargs.values())))

        return record


class FakeImages:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, str]] = []

    async def set_image_status(self, image_id: str, status: str, expect: str | None = None) -> bool:
        self.statuses.append((image_id, status))
        return True


@dataclass
class Cloud:
    store: Store
    config: ServeConfig
    hub: FakeHub
    caps: Capabilities
    consoleauth: Casts
    conductor: Conductor

    async def instance(self, **overrides: Any) -> str:
        uuid = str(uuidlib.uuid4())
        values: dict[str, Any] = {
            "uuid": uuid,
            "name": "vm",
            "hostname": "vm",
            "project_id": "p1",
            "user_id": "u1",
            "image_ref": IMAGE,
            "flavor_id": "1",
            "flavor": FLAVOR,
            "vm_state": st.BUILDING,
            "task_state": st.SCHEDULING,
            "host": None,
            "mac_address": "fa:16:3e:00:00:01",
            "reservation_id": "r-1",
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        values.update(overrides)
        await db.create(self.store, values)
        return uuid

    async def get(self, uuid: str) -> dict[str, Any]:
        row = await db.get(self.store, uuid, include_deleted=True)
        assert row is not None
        return row

    async def allocation(self, uuid: str) -> str | None:
        claims = {c["instance_uuid"]: c["host"] for c in await allocations.all_claims(self.store)}
        return claims.get(uuid)


def make_cloud(store: Store, config: ServeConfig, hub: FakeHub | None = None) -> Cloud:
    """A real Conductor over `store` and the real scheduler, with the fake hub and recording
    stand-ins for its bus clients."""
    hub = hub if hub is not None else FakeHub()
    caps = Capabilities()
    consoleauth = Casts()
    conductor = Conductor(
        config=config,
        store=store,
        hub=hub,  # type: ignore[arg-type]
        capabilities=caps,
        scheduler=Scheduler(store, config),  # type: ignore[arg-type]
        images=FakeImages(),  # type: ignore[arg-type]
        consoleauth=consoleauth,  # type: ignore[arg-type]
        conductor=Casts(),  # type: ignore[arg-type]
    )
    return Cloud(store, config, hub, caps, consoleauth, conductor)


async def add_host(store: Store, host: str, memory_mb: int = 4096) -> None:
    resources = {"vcpus": 4, "memory_mb": memory_mb, "local_gb": 40}
    await hosts.node_connected(store, host, resources, "fake", now_iso())


async def add_image(store: Store) -> None:
    """The public image IMAGE, active."""
    now = now_iso()
    await images.create(
        store,
        {
            "id": IMAGE,
            "name": "cirros",
            "status": "active",
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": 100,
            "checksum": "0" * 32,
            "visibility": "public",
            "created_at": now,
            "updated_at": now,
        },
    )


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    await add_image(store)
    config = ServeConfig(data_dir=tmp_path, build_retries=3, heartbeat_interval=5)
    hub = FakeHub(answers={"spawn": {"power_state": st.RUNNING, "addresses": [{"addr": "x"}]}})
    return make_cloud(store, config, hub)


# ---- builds -------------------------------------------------------------------------------


async def test_build_lands_active_with_the_agents_answer(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1")
    uuid = await cloud.instance()
    await cloud.conductor.handle("build_instances", {"uuids": [uuid]})

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"], inst["host"]) == (st.ACTIVE, None, "n1")
    assert inst["power_state"] == st.RUNNING and inst["addresses"] == [{"addr": "x"}]
    assert inst["launched_at"] and inst["fault"] is None
    assert await cloud.allocation(uuid) == "n1"

    (spawn,) = cloud.hub.sent("spawn")
    assert spawn.host == "n1" and spawn.timeout == cloud.config.spawn_timeout
    spec = spawn.params["instance"]
    assert spec["uuid"] == uuid and spec["flavor"]["ram_mb"] == 512
    assert spec["image"]["url"].endswith(f"/image/v2/images/{IMAGE}/file")
    assert spec["image"]["capability"].startswith("mnc_")
    assert len(cloud.caps) == 0  # the download capability ended with the order


async def test_spawn_failure_everywhere_is_error_with_the_agents_fault(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1")
    cloud.hub.answers["spawn"] = ProtocolError("failed", "fake spawn failure requested")
    uuid = await cloud.instance()
    await cloud.conductor.do_build_instances([uuid])

    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["task_state"]) == (st.ERROR, None)
    assert inst["fault"]["code"] == 500
    assert f"Build of instance {uuid} failed on n1" in inst["fault"]["message"]
    assert "fake spawn failure requested" in inst["fault"]["message"]
    assert await cloud.allocation(uuid) is None  # the claim was released
    assert [(o.host, o.params) for o in cloud.hub.sent("destroy")] == [("n1", {"uuid": uuid})]
    assert len(cloud.hub.sent("spawn")) == 1  # no other host to retry on
    assert len(cloud.caps) == 0


async def test_failed_spawn_is_retried_on_another_host(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1", memory_mb=8192)  # most free RAM: tried first
    await add_host(cloud.store, "n2")

    def spawn(order: Order) -> Any:
        if order.host == "n1":
            return ProtocolError("failed", "disk full")
        return {"power_state": st.RUNNING, "addresses": []}

    cloud.hub.answers["spawn"] = spawn
    uuid = await cloud.instance()
    await cloud.conductor.do_build_instances([uuid])

    assert [o.host for o in cloud.hub.sent("spawn")] == ["n1", "n2"]
    inst = await cloud.get(uuid)
    assert (inst["vm_state"], inst["host"]) == (st.ACTIVE, "n2")
    assert await cloud.allocation(uuid) == "n2"


async def test_no_host_is_error_with_no_valid_host(cloud: Cloud) -> None:
    uuid = await cloud.instance()
    await cloud.conductor.do_build_instances([uuid])
    inst = await cloud.get(uuid)
    assert inst["vm_state"] == st.ERROR
    assert "No valid host was found" in inst["fault"]["message"]
    assert cloud.hub.orders == []


async def test_a_host_whose_heartbeats_stopped_gets_no_build(
    cloud: Cloud, fake_clock: FakeClock
) -> None:
    await add_host(cloud.store, "n1")  # heartbeat now, on the fake clock
    limit = cloud.config.heartbeat_interval * cloud.config.missed_heartbeats_down
    fake_clock.advance(limit + 1)  # no sleeping: the clock moves past the liveness window
    uuid = await cloud.instance()
    await cloud.conductor.do_build_instances([uuid])
    inst = await cloud.get(uuid)
    assert inst["vm_state"] == st.ERROR
    assert "n1: down" in inst["fault"]["message"]
    assert cloud.hub.orders == []


async def test_build_of_an_instance_deleted_meanwhile_does_nothing(cloud: Cloud) -> None:
    await add_host(cloud.store, "n1")
    uuid = await cloud.instance(task_state=st.DELETING)
    await cloud.conductor.do_build_instances([uuid])
    assert cloud.hub.orders == []
    assert await cloud.allocation(uuid) is None


# ---- deletes -------------------------------------------------------------------------------


async def _active_on_n1(cloud: Cloud) -> str:
    await add_host(cloud.store, "n1")
    uuid = await cloud.instance()
    await cloud.conductor.do_build_instances([uuid])
    assert (await cloud.get(uuid))["vm_state"] == st.ACTIVE
    cloud.hub.orders.clear()
    return uuid


async def test_delete_destroys_the_guest_and_frees_everything(cloud: Cloud) -> None:
    uuid = await _active_on_n1(cloud)
    await cloud.conductor.handle("delete_instance", {"uuid": uuid})

    assert [(o.host, o.method, o.params) for o in cloud.hub.orders] == [
        ("n1", "destroy", {"uuid": uuid})
    ]
    inst = await cloud.get(uuid)
    assert inst["deleted"] and inst["vm_state"] == st.DELETED and inst["task_state"] is None
    assert inst["terminated_at"]
    assert await db.get(cloud.store, uuid) is None
    assert await cloud.allocation(uuid) is None
    assert cloud.consoleauth.calls == [("revoke_instance", (uuid,))]


async def test_delete_with_the_host_down_still_deletes(cloud: Cloud) -> None:
    uuid = await _active_on_n1(cloud)
    cloud.hub.down.add("n1")
    await cloud.conductor.do_delete_instance(uuid)
    assert [o.method for o in cloud.hub.orders] == ["destroy"]  # tried, refused
    inst = await cloud.get(uuid)
    assert inst["deleted"] and inst["vm_state"] == st.DELETED
    assert await cloud.allocation(uuid) is None


async def test_delete_of_a_never_scheduled_instance_sends_no_order(cloud: Cloud) -> None:
    uuid = await cloud.instance(vm_state=st.ERROR, task_state=st.DELETING)
    await cloud.conductor.do_delete_instance(uuid)
    assert cloud.hub.orders == []
    assert (await cloud.get(uuid))["deleted"]
