"""Network pushes in rounds (mininova/conductor/network_push.py): one read of a remote group
for all of a round's hosts, and a change made during a round reaches its hosts in the next."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mininova import instance_states as st
from mininova.config import ServeConfig
from mininova.network.hoststate import desired_state
from mininova.protocol.core import ProtocolError
from mininova.protocol.network_members import STALE_STATE, MemberState, for_driver
from mininova.store import Store, host_network
from mininova.store import instances as db
from tests.conductor.test_conductor_fake_hub import Cloud, add_host, add_image, make_cloud
from tests.kit.fake_cloud import running_controller
from tests.kit.wait import wait_for

HOSTS = ("n1", "n2", "n3")


def _address(ip: str) -> list[dict[str, Any]]:
    return [{"version": 4, "addr": ip, "mac": "fa:16:3e:00:00:01"}]


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    await add_image(store)
    for host in HOSTS:
        await add_host(store, host)
    cloud = make_cloud(store, ServeConfig(data_dir=tmp_path, heartbeat_interval=5))
    cloud.conductor.network.spacing = 0.05
    return cloud


async def _active(cloud: Cloud, host: str, ip: str) -> str:
    return await cloud.instance(
        vm_state=st.ACTIVE, task_state=None, host=host, addresses=_address(ip)
    )


def _pushed(cloud: Cloud, host: str) -> list[dict[str, Any]]:
    return [o.params["state"] for o in cloud.hub.sent("network_sync") if o.host == host]


async def _whole_states_first(cloud: Cloud, state_version: int) -> None:
    """A guest on each host (10.0.0.10, .11, .12) and each host's whole state pushed."""
    cloud.hub.state_version = state_version
    for n, host in enumerate(HOSTS):
        await _active(cloud, host, f"10.0.0.{n + 10}")
    await cloud.conductor.do_sync_network(list(HOSTS))


def _count_reads(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """What each call of `host_network.<name>` asks for (its argument after the store), from
    now on."""
    reads: list[Any] = []
    original = getattr(host_network, name)

    async def counted(db: Any, asked: Any) -> Any:
        reads.append(asked)
        return await original(db, asked)

    monkeypatch.setattr(host_network, name, counted)
    return reads


def _count_whole_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts whose whole own part is read from now on (one entry per read)."""
    return _count_reads(monkeypatch, "instances_on_host")


def _group_ips(state: dict[str, Any]) -> list[str]:
    (ips,) = state["remote_groups"].values()  # the project's default group
    return sorted(ips)


async def test_one_read_of_the_default_group_serves_every_host_of_a_round(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, host in enumerate(HOSTS):
        await _active(cloud, host, f"10.0.0.{n + 10}")
    reads = []
    original = host_network.ungrouped

    async def counted(db: Any, projects: list[str]) -> Any:
        reads.append(projects)
        await asyncio.sleep(0.05)  # a slow read: the round's other hosts get to run meanwhile
        return await original(db, projects)

    monkeypatch.setattr(host_network, "ungrouped", counted)
    await cloud.conductor.do_sync_network(list(HOSTS))
    assert reads == [["p1"]]
    for host in HOSTS:
        (state,) = _pushed(cloud, host)
        assert _group_ips(state) == ["10.0.0.10", "10.0.0.11", "10.0.0.12"]


async def test_a_change_during_a_round_reaches_its_hosts_in_the_next(cloud: Cloud) -> None:
    await _active(cloud, "n1", "10.0.0.10")
    in_round, release = asyncio.Event(), asyncio.Event()
    call = cloud.hub.call

    async def slow_call(host: str, method: str, params: Any = None, timeout: float = 60) -> Any:
        if method == "network_sync" and not release.is_set():
            in_round.set()
            await release.wait()
        return await call(host, method, params, timeout)

    cloud.hub.call = slow_call  # type: ignore[method-assign]
    first = asyncio.create_task(cloud.conductor.do_sync_network(["n1"]))
    await asyncio.wait_for(in_round.wait(), 5)  # round 1 has read the state already
    uuid = await _active(cloud, "n2", "10.0.0.11")  # committed, then its hosts marked
    second = asyncio.create_task(cloud.conductor.do_sync_network(["n1", "n2"]))
    await asyncio.sleep(0.1)
    assert not second.done()  # it waits for its own round
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    n1 = _pushed(cloud, "n1")
    assert [_group_ips(s) for s in n1] == [["10.0.0.10"], ["10.0.0.10", "10.0.0.11"]]
    assert [_group_ips(s) for s in _pushed(cloud, "n2")] == [["10.0.0.10", "10.0.0.11"]]

    # Asked for many times while a round runs, a host is pushed once in the next round.
    await db.update(cloud.store, uuid, addresses=_address("10.0.0.12"))
    await asyncio.gather(*(cloud.conductor.do_sync_network(["n1"]) for _ in range(10)))
    assert [_group_ips(s) for s in _pushed(cloud, "n1")][2:] == [["10.0.0.10", "10.0.0.12"]]


async def test_failed_pushes_neither_stop_the_round_nor_the_pusher(cloud: Cloud) -> None:
    for n, host in enumerate(HOSTS):
        await _active(cloud, host, f"10.0.0.{n + 10}")
    cloud.hub.down.add("n2")  # no link: the order raises HostUnavailable
    cloud.hub.answers["network_sync"] = lambda o: RuntimeError("bug") if o.host == "n3" else {}
    await cloud.conductor.do_sync_network(list(HOSTS))  # logged, not raised
    cloud.hub.down.clear()
    cloud.hub.answers.pop("network_sync")
    await cloud.conductor.do_sync_network(list(HOSTS))
    assert [len(_pushed(cloud, h)) for h in HOSTS] == [2, 2, 2]  # n2's first never reached it


async def test_a_host_without_a_link_is_forgotten_until_it_is_pushed_again(
    cloud: Cloud,
) -> None:
    """A push that finds no link drops the host from the groups' referencing hosts: later
    changes of its project do not try it again; its next whole push (the agent's hello)
    names its groups again."""
    await _whole_states_first(cloud, 3)
    network = cloud.conductor.network
    assert network.referencing["default:p1"] == set(HOSTS)
    cloud.hub.down.add("n2")  # n2's agent went away
    await _active(cloud, "n1", "10.0.0.20")
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    tried = len([o for o in cloud.hub.orders if o.host == "n2"])
    assert network.referencing["default:p1"] == {"n1", "n3"}
    assert "n2" not in network.held

    await _active(cloud, "n1", "10.0.0.21")
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    assert len([o for o in cloud.hub.orders if o.host == "n2"]) == tried  # not tried again
    (order,) = [o.params for o in cloud.hub.sent("network_members") if o.host == "n3"][-1:]
    assert next(iter(order["groups"].values()))["add"] == ["10.0.0.21"]

    cloud.hub.down.clear()
    await cloud.conductor.do_sync_network(["n2"])  # what the agent's hello asks for
    assert network.referencing["default:p1"] == set(HOSTS)
    assert _group_ips(_pushed(cloud, "n2")[-1]) == [
        "10.0.0.10",
        "10.0.0.11",
        "10.0.0.12",
        "10.0.0.20",
        "10.0.0.21",
    ]


async def test_closing_the_conductor_ends_a_round_in_flight(cloud: Cloud) -> None:
    """The controller closes the conductor before the store: a round waiting on an agent is
    cancelled, and whoever waited for that push is let go (no round runs on a closed store)."""
    await _active(cloud, "n1", "10.0.0.10")
    ordered = asyncio.Event()

    async def never_answers(host: str, method: str, params: Any = None, timeout: float = 60):
        ordered.set()
        await asyncio.Event().wait()

    cloud.hub.call = never_answers  # type: ignore[method-assign]
    waiting = asyncio.create_task(cloud.conductor.do_sync_network(["n1"]))
    await asyncio.wait_for(ordered.wait(), 5)
    await cloud.conductor.close()
    await asyncio.wait_for(waiting, 5)
    task = cloud.conductor.network._task
    assert task is not None and task.done()


async def test_the_controller_stops_the_pusher_before_closing_the_store(
    tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a round still running at shutdown fails on the closed store, host by host (seen
    as hundreds of 'pool is closing' tracebacks from a 1,000-host bench on PostgreSQL)."""
    seen: list[bool] = []
    async with running_controller(tmp_path, database_url) as controller:
        await controller.conductor.do_sync_network(["no-such-host"])  # starts the pusher
        pusher_task = controller.conductor.network._task
        assert pusher_task is not None and not pusher_task.done()
        store = controller.store
        assert store is not None
        close_store = store.close

        async def close() -> None:
            seen.append(pusher_task.done())
            await close_store()

        monkeypatch.setattr(store, "close", close)
    assert seen == [True]


async def test_version_3_hosts_get_only_what_changed_in_their_groups(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _whole_states_first(cloud, 3)
    for host in HOSTS:
        (state,) = _pushed(cloud, host)
        assert _group_ips(state) == ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
        assert list(state["remote_group_versions"].values()) == [1]

    worked_out = _count_whole_reads(monkeypatch)
    uuid = await _active(cloud, "n1", "10.0.0.13")  # a build lands on n1
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    assert worked_out == ["n1"]  # the others' own parts were not worked out again
    assert len(_pushed(cloud, "n1")) == 2
    for host in ("n2", "n3"):
        assert len(_pushed(cloud, host)) == 1
        (order,) = [o.params for o in cloud.hub.sent("network_members") if o.host == host]
        (change,) = order["groups"].values()
        assert change == {"from": 1, "version": 2, "add": ["10.0.0.13"], "remove": []}

    # Nothing changed in the groups: members-only hosts get no order at all.
    await cloud.conductor.do_sync_network([], projects=["p1"])
    assert len(cloud.hub.sent("network_members")) == 2

    await db.mark_deleted(cloud.store, uuid, st.DELETED)
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    changes = [next(iter(o.params["groups"].values())) for o in cloud.hub.sent("network_members")]
    assert changes[2:] == [{"from": 2, "version": 3, "add": [], "remove": ["10.0.0.13"]}] * 2


async def test_an_agent_holding_a_stale_state_is_sent_it_whole(cloud: Cloud) -> None:
    cloud.hub.state_version = 3
    for n, host in enumerate(HOSTS):
        await _active(cloud, host, f"10.0.0.{n + 10}")
    await cloud.conductor.do_sync_network(list(HOSTS))
    cloud.hub.answers["network_members"] = lambda o: (
        ProtocolError(STALE_STATE, "no version 3 state held") if o.host == "n2" else {}
    )
    await _active(cloud, "n1", "10.0.0.13")
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    await wait_for(lambda: len(_pushed(cloud, "n2")) == 2, 5, 0.02, "n2's whole state again")
    assert _group_ips(_pushed(cloud, "n2")[1]) == [
        "10.0.0.10",
        "10.0.0.11",
        "10.0.0.12",
        "10.0.0.13",
    ]
    assert len(_pushed(cloud, "n3")) == 1  # n3 took the change


async def test_version_4_hosts_get_only_the_documents_of_the_instances_that_changed(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _whole_states_first(cloud, 4)
    agents = {host: MemberState() for host in HOSTS}
    for host in HOSTS:
        (state,) = _pushed(cloud, host)
        agents[host].replace(state)

    whole_reads = _count_whole_reads(monkeypatch)

    async def agents_match_the_database() -> None:
        for order in cloud.hub.sent("network_members"):
            if order not in applied:
                agents[order.host].apply(order.params)
                applied.append(order)
        for host in HOSTS:
            expected = for_driver({**await desired_state(cloud.store, host, 4), "epoch": ""})
            assert agents[host].state is not None
            assert for_driver(agents[host].state) | {"epoch": ""} == expected | {"epoch": ""}
        whole_reads.clear()  # the reads of this check

    applied: list[Any] = []
    uuid = await _active(cloud, "n1", "10.0.0.13")  # a build lands on n1
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"], instances=[uuid])
    assert whole_reads == []  # no host's whole own part was read again
    assert all(len(_pushed(cloud, host)) == 1 for host in HOSTS)  # and none sent whole
    (order,) = [o.params for o in cloud.hub.sent("network_members") if o.host == "n1"]
    assert [doc["uuid"] for doc in order["instances"]["put"]] == [uuid]
    assert order["instances"]["remove"] == []
    assert next(iter(order["groups"].values()))["add"] == ["10.0.0.13"]
    for host in ("n2", "n3"):  # the others: the group change only
        (order,) = [o.params for o in cloud.hub.sent("network_members") if o.host == host]
        assert "instances" not in order
    await agents_match_the_database()

    await db.mark_deleted(cloud.store, uuid, st.DELETED)  # the guest is deleted
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"], instances=[uuid])
    order = [o.params for o in cloud.hub.sent("network_members") if o.host == "n1"][-1]
    assert order["instances"] == {"put": [], "remove": [uuid]}
    assert whole_reads == []
    await agents_match_the_database()

    # A whole mark (e.g. a rule changed) still sends the whole state.
    await cloud.conductor.do_sync_network(["n2"])
    assert len(_pushed(cloud, "n2")) == 2


@pytest.mark.parametrize("state_version", [2, 3])
async def test_a_project_change_reaches_only_the_hosts_naming_its_groups(
    cloud: Cloud, state_version: int
) -> None:
    cloud.hub.state_version = state_version
    await _active(cloud, "n1", "10.0.0.10")
    await _active(cloud, "n2", "10.0.0.11")
    await cloud.instance(  # n3 runs only another project's guest
        vm_state=st.ACTIVE,
        task_state=None,
        host="n3",
        addresses=_address("10.0.1.10"),
        project_id="p2",
    )
    await cloud.conductor.do_sync_network(list(HOSTS))
    assert sorted(cloud.conductor.network.referencing) == ["default:p1", "default:p2"]

    await _active(cloud, "n1", "10.0.0.12")  # a build of p1 lands on n1
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"])
    assert _group_ips(_pushed(cloud, "n1")[-1]) == ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
    if state_version == 3:  # n2 gets the addition only
        (order,) = [o.params for o in cloud.hub.sent("network_members") if o.host == "n2"]
        assert next(iter(order["groups"].values()))["add"] == ["10.0.0.12"]
    else:  # n2's agent cannot take an order: it gets its whole state
        assert _group_ips(_pushed(cloud, "n2")[-1]) == ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
    assert len(_pushed(cloud, "n3")) == 1  # nothing for n3, whose rules never name p1's group
    assert not [o for o in cloud.hub.sent("network_members") if o.host == "n3"]


async def test_rounds_read_only_the_instances_that_changed_not_their_groups(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _whole_states_first(cloud, 4)
    group_reads = _count_reads(monkeypatch, "ungrouped")
    for n in range(3):  # builds land: each round reads that instance only
        uuid = await _active(cloud, HOSTS[n], f"10.0.0.{n + 20}")
        await cloud.conductor.do_sync_network([HOSTS[n]], projects=["p1"], instances=[uuid])
    assert group_reads == []
    await db.mark_deleted(cloud.store, uuid, st.DELETED)
    await cloud.conductor.do_sync_network([HOSTS[2]], projects=["p1"], instances=[uuid])
    assert group_reads == []
    expected = ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.20", "10.0.0.21"]
    for host in HOSTS:  # what each host holds: its first state plus the orders since
        agent = MemberState()
        agent.replace(_pushed(cloud, host)[0])
        for order in cloud.hub.sent("network_members"):
            if order.host == host:
                agent.apply(order.params)
        assert agent.state is not None
        assert _group_ips(agent.state) == expected

    # Told only that the project changed (which instances is not known): read again.
    await db.update(cloud.store, uuid, deleted=0)
    await cloud.conductor.do_sync_network([], projects=["p1"])
    assert group_reads == [["p1"]]
    added = [o.params["groups"] for o in cloud.hub.sent("network_members")][-1]
    assert next(iter(added.values()))["add"] == ["10.0.0.22"]


async def test_one_read_gives_every_host_of_a_round_its_changed_documents(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _whole_states_first(cloud, 4)
    reads = _count_reads(monkeypatch, "live_instances_among")
    on_n1 = await _active(cloud, "n1", "10.0.0.30")
    on_n2 = await _active(cloud, "n2", "10.0.0.31")
    await cloud.conductor.do_sync_network(["n1", "n2"], projects=["p1"], instances=[on_n1, on_n2])
    assert reads == [sorted([on_n1, on_n2])]  # one read for both hosts
    orders = {o.host: o.params for o in cloud.hub.sent("network_members")}
    assert [d["uuid"] for d in orders["n1"]["instances"]["put"]] == [on_n1]
    assert [d["uuid"] for d in orders["n2"]["instances"]["put"]] == [on_n2]
    assert "instances" not in orders["n3"]  # the group change only

    # A uuid named for a host it is not on is left out of that host's documents.
    await db.update(cloud.store, on_n1, addresses=_address("10.0.0.32"))
    await cloud.conductor.do_sync_network(["n1"], projects=["p1"], instances=[on_n1, on_n2])
    first, order = [o.params for o in cloud.hub.sent("network_members") if o.host == "n1"]
    (put,) = order["instances"]["put"]
    assert (put["uuid"], put["fixed_ips"]) == (on_n1, ["10.0.0.32"])
