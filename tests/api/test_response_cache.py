"""Kept listing bodies (`mininova.api.response_cache`): a poll sees every write, its own or
another process's, and a host going DOWN when only the clock moved."""

from __future__ import annotations

from mininova import timeutil
from mininova.api.response_cache import ResponseCache
from mininova.controller import Controller
from mininova.store import Store, hosts, instances
from mininova.timeutil import now_iso
from tests.api.test_infra import add_node
from tests.conftest import ApiClient
from tests.kit.clock import FakeClock

DETAIL = "/compute/v2.1/servers/detail"


async def _boot(api: ApiClient, name: str) -> str:
    image = await api.upload_image()
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    status, created, _ = await api.post("/compute/v2.1/servers", json=body, version="2.100")
    assert status == 202, created
    uuid = created["server"]["id"]
    await api.wait_server(uuid, "ERROR")  # no compute host in this cloud
    return uuid


async def _names(api: ApiClient, path: str = DETAIL) -> list[str]:
    status, body, _ = await api.get(path, version="2.100")
    assert status == 200, body
    return [s["name"] for s in body["servers"]]


async def test_a_poll_sees_each_write_and_repeats_are_served_kept(
    controller: Controller, api: ApiClient
) -> None:
    cache = controller.services.response_cache
    uuid = await _boot(api, "first")
    assert await _names(api) == ["first"]
    hits = cache.hits
    assert await _names(api) == ["first"]
    assert cache.hits == hits + 1  # nothing written in between: the kept body

    status, _, _ = await api.put(
        f"/compute/v2.1/servers/{uuid}", json={"server": {"name": "renamed"}}
    )
    assert status == 200
    assert await _names(api) == ["renamed"]
    assert await _names(api, "/compute/v2.1/servers") == ["renamed"]

    # Another process writing the same database (a second connection, as `mininova` admin
    # commands or a second controller would): the next poll sees it too.
    assert controller.store is not None
    other = Store(controller.store.url)
    await other.open(migrate=False)
    try:
        assert await instances.update(other, uuid, name="from-elsewhere")
    finally:
        await other.close()
    assert await _names(api) == ["from-elsewhere"]


async def test_each_caller_gets_its_own_listing(
    controller: Controller, api: ApiClient, member_api: ApiClient
) -> None:
    await _boot(api, "admins")
    assert await _names(api) == ["admins"]
    assert await _names(member_api) == []  # same path and query, another project


async def test_host_status_turns_down_with_the_clock_alone(
    controller: Controller, api: ApiClient, fake_clock: FakeClock
) -> None:
    """An admin's kept listing expires when a host's heartbeat window runs out, though
    nothing was written."""
    store = controller.store
    assert store is not None
    uuid = await _boot(api, "placed")
    await add_node(controller, "cn1")
    await hosts.record_heartbeats(store, ["cn1"], now_iso())
    assert await instances.update(store, uuid, host="cn1")

    async def host_status() -> str:
        status, body, _ = await api.get(DETAIL, version="2.100")
        assert status == 200, body
        return body["servers"][0]["host_status"]

    assert await host_status() == "UP"
    marker = await store.change_marker()
    config = controller.config
    fake_clock.advance(config.heartbeat_interval * config.missed_heartbeats_down + 0.01)
    assert await host_status() == "DOWN"
    assert await store.change_marker() == marker  # the clock did it, not a write


def test_bodies_are_bounded_and_least_recently_used_go_first() -> None:
    clock = FakeClock()
    with timeutil.use_clock(clock):
        cache = ResponseCache(max_bytes=400)
        for n in range(5):
            cache.put(("k", n), 1, bytes(100))
        assert len(cache) == 4 and cache.bytes == 400
        assert cache.get(("k", 0), 1) is None  # the oldest went first
        assert cache.get(("k", 1), 1) is not None
        cache.put(("k", 5), 1, bytes(100))
        assert cache.get(("k", 1), 1) is not None  # used last: kept
        assert cache.get(("k", 2), 1) is None
        assert cache.get(("k", 1), 2) is None  # another marker: a write happened

        cache.put("big", 1, bytes(101))  # over a quarter of the bound: not kept
        assert cache.get("big", 1) is None

        cache.put("ttl", 1, b"x", ttl=5)
        clock.advance(4.9)
        assert cache.get("ttl", 1) == b"x"
        clock.advance(0.1)
        assert cache.get("ttl", 1) is None


async def test_a_poll_renders_again_only_the_servers_that_changed(
    controller: Controller, api: ApiClient, fake_clock: FakeClock, monkeypatch
) -> None:
    """Kept server documents (`RenderedServers`): after a write to one server, the next
    listing renders that one alone; with the clock standing still (same `updated_at`) a
    change is still seen, since a kept document is keyed by the whole row."""
    from mininova.api.compute import servers as handlers

    first, second = await _boot(api, "a"), await _boot(api, "b")
    assert sorted(await _names(api)) == ["a", "b"]
    rendered = []
    show_view = handlers.views.show_view

    def counted(base, inst, *args, **kwargs):
        rendered.append(inst["uuid"])
        return show_view(base, inst, *args, **kwargs)

    monkeypatch.setattr(handlers.views, "show_view", counted)
    assert controller.store is not None
    for name in ("c", "d"):  # two writes at the same fake instant
        assert await instances.update(controller.store, first, name=name)
        assert sorted(await _names(api)) == ["b", name]
    assert rendered == [first, first]
    assert second not in rendered
