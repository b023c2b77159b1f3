"""The in-memory scheduler: the fast choice equals the reference filters + weigher, claims are
checked against the database, and a second controller's claims are never overbooked."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from mininova.config import ServeConfig
from mininova.errors import NoValidHost
from mininova.scheduler import GroupState, Request, Scheduler
from mininova.scheduler.state import HostStates
from mininova.store import Store, allocations, hosts
from mininova.timeutil import iso, now_iso, now_utc


def _node(rng: random.Random, name: str, now: Any) -> dict[str, Any]:
    age = rng.choice([0, 1, 5, 20, 100])
    return {
        "host": name,
        "vcpus": rng.choice([1, 2, 4]),
        "memory_mb": rng.choice([512, 1024, 2048, 4096]),
        "local_gb": rng.choice([1, 10, 40]),
        "cpu_allocation_ratio": rng.choice([1.0, 4.0]),
        "ram_allocation_ratio": rng.choice([1.0, 1.5]),
        "disk_allocation_ratio": 1.0,
        "disabled": int(rng.random() < 0.1),
        "forced_down": int(rng.random() < 0.05),
        "zone": rng.choice(["nova", "nova", "az2"]),
        "connected": int(rng.random() < 0.9),
        "last_heartbeat": iso(now.fromtimestamp(now.timestamp() - age, now.tzinfo)),
    }


def test_fast_choice_equals_the_reference_filters_and_weigher() -> None:
    rng = random.Random(7)
    now = now_utc()
    for _round in range(300):
        states = HostStates(down_after_s=15)
        names = [f"h{i:02d}" for i in range(rng.randint(0, 12))]
        states.load_nodes([_node(rng, name, now) for name in names])
        for n in range(rng.randint(0, 20)):
            if names:
                states.add_claim(f"c{n}", rng.choice(names), rng.randint(0, 2), 256, 1)
        group = None
        if names and rng.random() < 0.4:
            policy = rng.choice(
                ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
            )
            members = {rng.choice(names): rng.randint(1, 2) for _ in range(rng.randint(0, 3))}
            group = GroupState(policy, rng.choice([1, 2]), members)
        req = Request(
            instance_uuid=rng.choice(["new", "c0", "c1"]),
            vcpus=rng.choice([1, 2]),
            memory_mb=rng.choice([128, 512, 2048]),
            disk_gb=rng.choice([1, 5]),
            availability_zone=rng.choice([None, "", "nova", "az2"]),
            exclude=tuple(rng.sample(names, k=min(len(names), rng.randint(0, 2)))),
            force_host=rng.choice([None, None, None, *(names[:1])]),
        )
        assert states.choose(req, group) == states.reference_choice(req, group), (req, group)


def test_plain_requests_follow_claims_releases_and_reloads() -> None:
    """The free RAM heap of plain requests stays true to the hosts across many changes."""
    rng = random.Random(11)
    now = now_utc()
    states = HostStates(down_after_s=15)
    names = [f"h{i:03d}" for i in range(40)]
    states.load_nodes([_node(rng, name, now) for name in names])
    claimed: list[str] = []
    chosen_hosts = set()
    for step in range(3000):
        req = Request(
            instance_uuid=f"i{step}",
            vcpus=rng.choice([0, 1]),
            memory_mb=rng.choice([64, 128, 256]),
            disk_gb=rng.choice([0, 1]),
        )
        chosen = states.choose(req, None)
        assert chosen == states.reference_choice(req, None), step
        if chosen is not None and rng.random() < 0.7:
            states.add_claim(req.instance_uuid, chosen, req.vcpus, req.memory_mb, req.disk_gb)
            claimed.append(req.instance_uuid)
            chosen_hosts.add(chosen)
        if claimed and rng.random() < 0.3:
            states.drop_claim(claimed.pop(rng.randrange(len(claimed))))
        if rng.random() < 0.01:  # a reload: hosts come, go, change liveness
            kept = rng.sample(names, k=rng.randint(20, 40))
            states.load_nodes([_node(rng, name, now) for name in kept])
    assert len(chosen_hosts) > 10


async def _add_host(store: Store, name: str, vcpus: int, memory_mb: int) -> None:
    resources = {"vcpus": vcpus, "memory_mb": memory_mb, "local_gb": 10}
    await hosts.node_connected(store, name, resources, "fake", now_iso())


def _request(uuid: str, memory_mb: int = 1024) -> Request:
    return Request(instance_uuid=uuid, vcpus=1, memory_mb=memory_mb, disk_gb=1)


async def test_claims_spread_release_and_no_valid_host(store: Store) -> None:
    config = ServeConfig()
    await _add_host(store, "a", 4, 2048)
    await _add_host(store, "b", 4, 3072)
    # The ratios come from the compute_nodes row (default 1.5): 3072 MiB and 4608 MiB.
    scheduler = Scheduler(store, config)
    placed = [await scheduler.select_and_claim(_request(f"i{n}")) for n in range(7)]
    assert sorted(placed) == ["a", "a", "a", "b", "b", "b", "b"]
    with pytest.raises(NoValidHost) as caught:
        await scheduler.select_and_claim(_request("i7"))
    assert "a: not enough RAM" in str(caught.value) and "b: not enough RAM" in str(caught.value)
    await scheduler.release("i0")
    assert await scheduler.select_and_claim(_request("i7")) == placed[0]  # where room came back
    rows = await allocations.all_claims(store)
    assert len(rows) == 7 and {r["instance_uuid"] for r in rows} == {f"i{n}" for n in range(1, 8)}


async def test_two_schedulers_on_one_database_never_overbook(store: Store) -> None:
    """Two controllers share the database: each decides from its own memory, the claim's
    check in the database sends the loser to decide again."""
    await _add_host(store, "a", 4, 1024)  # room for one 1536 MiB guest (ratio 1.5)
    first, second = Scheduler(store, ServeConfig()), Scheduler(store, ServeConfig())
    await first.refresh()
    await second.refresh()
    assert await first.select_and_claim(_request("x", 1536)) == "a"
    # `second` has not seen that claim in memory, yet it must not place another guest there.
    second._claims_generation = store.generation("allocations")  # as if on another process
    with pytest.raises(NoValidHost):
        await second.select_and_claim(_request("y", 1536))
    assert [r["instance_uuid"] for r in await allocations.all_claims(store)] == ["x"]


async def test_a_host_that_goes_away_is_not_chosen(store: Store) -> None:
    await _add_host(store, "a", 4, 4096)
    scheduler = Scheduler(store, ServeConfig())
    assert await scheduler.select_and_claim(_request("i1")) == "a"
    await hosts.node_disconnected(store, "a", now_iso())
    with pytest.raises(NoValidHost, match="a: down"):
        await scheduler.select_and_claim(_request("i2"))


async def test_parallel_decisions_after_a_change_all_see_it(store: Store) -> None:
    """Regression (seen on PostgreSQL, where a reload really awaits): two decisions right after
    the hosts changed must both wait for the one reload, not decide on the old view."""
    stale = iso(now_utc().fromtimestamp(now_utc().timestamp() - 3600, now_utc().tzinfo))
    await hosts.node_connected(
        store, "a", {"vcpus": 8, "memory_mb": 8192, "local_gb": 40}, "fake", stale
    )
    scheduler = Scheduler(store, ServeConfig())
    await scheduler.refresh()  # sees host a long silent: down
    await hosts.record_heartbeats(store, ["a"], now_iso())  # a heartbeat sweep: up again
    placed = await asyncio.gather(
        *(scheduler.select_and_claim(_request(f"p{n}")) for n in range(3))
    )
    assert placed == ["a", "a", "a"]
