"""The heartbeat's power sync: a steady host costs no query, and anything that changes brings
the full comparison back (the conductor over a real store, the fake hub)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mininova import instance_states as st
from mininova import timeutil
from mininova.conductor import MISSING_SWEEPS, SETTLED_RESYNC_SECONDS
from mininova.config import ServeConfig
from mininova.store import Store, guest_reports
from mininova.store import instances as db
from tests.conductor.test_conductor_fake_hub import Cloud, add_host, add_image, make_cloud
from tests.kit.clock import FakeClock


class Statements:
    """Counts the statements the store runs (in and out of transactions)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        backend = store._backend
        for name in ("run", "run_alone"):
            original = getattr(backend, name)

            async def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.count += 1
                return await _original(*args, **kwargs)

            monkeypatch.setattr(backend, name, counted)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with timeutil.use_clock(FakeClock()) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    await add_image(store)
    await add_host(store, "n1")
    return make_cloud(store, ServeConfig(data_dir=tmp_path, heartbeat_interval=5))


def running(uuid: str) -> list[dict[str, Any]]:
    return [{"uuid": uuid, "power_state": st.RUNNING, "addresses": []}]


async def test_a_steady_host_costs_no_query_until_something_changes(
    cloud: Cloud, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = await cloud.instance(
        vm_state=st.ACTIVE, task_state=None, power_state=st.RUNNING, host="n1"
    )
    statements = Statements(cloud.store, monkeypatch)
    sync = cloud.conductor.do_sync_power_states

    await sync("n1", running(uuid))
    assert statements.take() > 0  # the first report is compared (and recorded)
    for _ in range(3):
        await sync("n1", running(uuid))
        assert statements.take() == 0

    # The guest stopped behind the API's back: a different report lands.
    await sync("n1", [{"uuid": uuid, "power_state": st.SHUTDOWN, "addresses": []}])
    assert statements.take() > 0
    assert (await cloud.get(uuid))["vm_state"] == st.STOPPED

    # The API started it again (a write to the instance): the same report is compared again.
    await db.update(cloud.store, uuid, vm_state=st.ACTIVE, power_state=st.RUNNING)
    await sync("n1", running(uuid))
    assert statements.take() > 0
    # ...and the full comparison comes back after SETTLED_RESYNC_SECONDS even with no write.
    await sync("n1", running(uuid))
    assert statements.take() == 0
    clock.advance(SETTLED_RESYNC_SECONDS + 1)
    await sync("n1", running(uuid))
    assert statements.take() > 0


async def test_identical_reports_still_count_a_missing_guest(cloud: Cloud) -> None:
    uuid = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n1")
    for _ in range(MISSING_SWEEPS):
        await cloud.conductor.do_sync_power_states("n1", [])
    inst = await cloud.get(uuid)
    assert inst["vm_state"] == st.ERROR, inst


async def test_a_deleted_instances_guest_is_reaped_after_a_steady_spell(cloud: Cloud) -> None:
    uuid = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n1")
    other = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n1")
    report = running(uuid) + running(other)
    await cloud.conductor.do_sync_power_states("n1", report)
    await cloud.conductor.do_sync_power_states("n1", report)
    await db.update(cloud.store, other, host="n2")  # moved by another path, guest left here
    await cloud.conductor.do_sync_power_states("n1", report)
    assert [(o.method, o.params) for o in cloud.hub.orders] == [("destroy", {"uuid": other})]


async def test_the_report_is_written_when_it_changes(cloud: Cloud, clock: FakeClock) -> None:
    uuid = await cloud.instance(vm_state=st.ACTIVE, task_state=None, host="n1")
    await cloud.conductor.do_sync_power_states("n1", running(uuid))
    first = (await guest_reports.all_reports(cloud.store))["n1"]
    clock.advance(5)
    await cloud.conductor.do_sync_power_states("n1", running(uuid))
    assert (await guest_reports.all_reports(cloud.store))["n1"] == first
    clock.advance(5)
    await cloud.conductor.do_sync_power_states("n1", [])
    now = (await guest_reports.all_reports(cloud.store))["n1"]
    assert now["guests"] == [] and now["reported_at"] > first["reported_at"]
