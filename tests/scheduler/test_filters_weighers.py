"""The scheduler's filters and weigher on plain host-state values: no store, no bus.

`filter_host` applies every filter at once and keeps the names of the failed ones in
`state.reasons`, so each case checks the exact reason list. Host liveness (`hosts.is_up`) is
read on the fake clock: a host goes down when its last heartbeat grows old, without sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from mininova.config import ServeConfig
from mininova.hosts import is_up
from mininova.scheduler import GroupState, HostState, Request, filter_host, host_state, weigh
from mininova.timeutil import now_iso
from tests.kit.clock import FakeClock


def node(host: str = "n1", **kw: Any) -> dict[str, Any]:
    """A compute_nodes row as the scheduler reads it."""
    row: dict[str, Any] = {
        "host": host,
        "vcpus": 4,
        "memory_mb": 4096,
        "local_gb": 40,
        "cpu_allocation_ratio": 1.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "disabled": 0,
        "zone": "nova",
    }
    row.update(kw)
    return row


def request(**kw: Any) -> Request:
    values: dict[str, Any] = {"instance_uuid": "i-1", "vcpus": 1, "memory_mb": 512, "disk_gb": 1}
    values.update(kw)
    return Request(**values)


def reasons(
    row: dict[str, Any],
    req: Request | None = None,
    *,
    up: bool = True,
    used: dict[str, int] | None = None,
    group: GroupState | None = None,
) -> list[str]:
    state = host_state(row, used or {})
    passed = filter_host(row, state, req or request(), up, group)
    assert passed == (state.reasons == [])
    return state.reasons


def hs(host: str, free_ram_mb: float) -> HostState:
    return HostState(host, free_vcpus=8, free_ram_mb=free_ram_mb, free_disk_gb=100, reasons=[])


# ---- host_state: free capacity under the allocation ratios ---------------------------------


def test_host_state_applies_ratios_and_usage() -> None:
    row = node(cpu_allocation_ratio=4.0, ram_allocation_ratio=1.5, disk_allocation_ratio=1.0)
    state = host_state(row, {"vcpus": 3, "memory_mb": 1000, "disk_gb": 10})
    assert (state.free_vcpus, state.free_ram_mb, state.free_disk_gb) == (13, 5144, 30)
    assert state.host == "n1" and state.reasons == []


def test_host_state_without_usage_is_the_whole_host() -> None:
    state = host_state(node(), {})
    assert (state.free_vcpus, state.free_ram_mb, state.free_disk_gb) == (4, 4096, 40)


# ---- each filter on its own ------------------------------------------------------------------


def test_a_fitting_host_passes_every_filter() -> None:
    assert reasons(node()) == []


def test_disabled_filter() -> None:
    assert reasons(node(disabled=1)) == ["disabled"]


def test_liveness_filter() -> None:
    assert reasons(node(), up=False) == ["down"]


def test_retry_filter_skips_hosts_already_tried() -> None:
    assert reasons(node("n1"), request(exclude=("n1",))) == ["already tried"]
    assert reasons(node("n2"), request(exclude=("n1",))) == []


def test_force_host_filter() -> None:
    assert reasons(node("n1"), request(force_host="n2")) == ["not the requested host"]
    assert reasons(node("n2"), request(force_host="n2")) == []


@pytest.mark.parametrize(("zone", "ok"), [(None, True), ("", True), ("nova", True), ("az2", False)])
def test_availability_zone_filter(zone: str | None, ok: bool) -> None:
    assert reasons(node(zone="nova"), request(availability_zone=zone)) == (
        [] if ok else ["other availability zone"]
    )


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("vcpus", "not enough vCPUs"),
        ("memory_mb", "not enough RAM"),
        ("disk_gb", "not enough disk"),
    ],
)
def test_resource_filters_accept_exactly_full_and_reject_one_more(field: str, reason: str) -> None:
    row = node(vcpus=4, memory_mb=4096, local_gb=40)
    used = {"vcpus": 3, "memory_mb": 3584, "disk_gb": 39}  # one vCPU, 512 MB, 1 GB left
    assert reasons(row, request(), used=used) == []
    bigger = {"vcpus": 1, "memory_mb": 512, "disk_gb": 1}
    bigger[field] += 1
    assert reasons(row, request(**bigger), used=used) == [reason]


def test_overcommit_ratio_lets_more_vcpus_fit() -> None:
    assert reasons(node(vcpus=2), request(vcpus=6)) == ["not enough vCPUs"]
    assert reasons(node(vcpus=2, cpu_allocation_ratio=4.0), request(vcpus=6)) == []


def test_every_failed_filter_is_reported() -> None:
    got = reasons(
        node("n1", disabled=1, zone="az2", vcpus=1),
        request(vcpus=2, availability_zone="nova", exclude=("n1",)),
        up=False,
    )
    assert got == [
        "disabled",
        "down",
        "already tried",
        "other availability zone",
        "not enough vCPUs",
    ]


# ---- the server group filter ---------------------------------------------------------------


def test_affinity_allows_any_host_while_the_group_is_empty() -> None:
    group = GroupState("affinity", 1, members={})
    assert reasons(node("n1"), group=group) == []


def test_affinity_keeps_members_together() -> None:
    group = GroupState("affinity", 1, members={"n2": 1})
    assert reasons(node("n2"), group=group) == []
    assert reasons(node("n1"), group=group) == [
        "server group affinity (members run on other hosts)"
    ]


def test_anti_affinity_respects_max_server_per_host() -> None:
    group = GroupState("anti-affinity", 2, members={"n1": 2, "n2": 1})
    assert reasons(node("n1"), group=group) == ["server group anti-affinity (max 2 per host)"]
    assert reasons(node("n2"), group=group) == []
    assert reasons(node("n3"), group=group) == []


@pytest.mark.parametrize("policy", ["soft-affinity", "soft-anti-affinity"])
def test_soft_policies_never_filter(policy: str) -> None:
    group = GroupState(policy, 1, members={"n1": 5})
    assert reasons(node("n1"), group=group) == []
    assert reasons(node("n2"), group=group) == []


# ---- the weigher --------------------------------------------------------------------------


def test_spread_puts_the_most_free_ram_first() -> None:
    ordered = weigh([hs("a", 1000), hs("b", 3000), hs("c", 2000)])
    assert [s.host for s in ordered] == ["b", "c", "a"]


def test_ties_go_to_the_host_name() -> None:
    ordered = weigh([hs("c", 1000), hs("a", 1000), hs("b", 1000)])
    assert [s.host for s in ordered] == ["a", "b", "c"]


def test_soft_affinity_prefers_the_most_members_over_free_ram() -> None:
    group = GroupState("soft-affinity", 1, members={"a": 1, "c": 3})
    ordered = weigh([hs("a", 9000), hs("b", 8000), hs("c", 100)], group)
    assert [s.host for s in ordered] == ["c", "a", "b"]


def test_soft_anti_affinity_prefers_the_fewest_members_then_free_ram() -> None:
    group = GroupState("soft-anti-affinity", 1, members={"a": 2, "b": 1})
    ordered = weigh([hs("a", 9000), hs("b", 8000), hs("c", 100), hs("d", 200)], group)
    assert [s.host for s in ordered] == ["d", "c", "b", "a"]


@pytest.mark.parametrize("policy", ["affinity", "anti-affinity"])
def test_hard_policies_leave_the_order_to_free_ram(policy: str) -> None:
    group = GroupState(policy, 1, members={"a": 1})
    ordered = weigh([hs("a", 100), hs("b", 200)], group)
    assert [s.host for s in ordered] == ["b", "a"]


def test_weigh_does_not_reorder_its_input() -> None:
    states = [hs("a", 1), hs("b", 2)]
    weigh(states)
    assert [s.host for s in states] == ["a", "b"]


# ---- host liveness on the fake clock ------------------------------------------------------


def test_host_goes_down_after_missed_heartbeats(fake_clock: FakeClock) -> None:
    config = ServeConfig(heartbeat_interval=5, missed_heartbeats_down=3)
    row = node(connected=1, last_heartbeat=now_iso())
    assert is_up(row, config)
    fake_clock.advance(15)  # exactly three missed heartbeats: still up
    assert is_up(row, config)
    fake_clock.advance(0.001)
    assert not is_up(row, config)
    row["last_heartbeat"] = now_iso()  # a heartbeat arrives
    assert is_up(row, config)


def test_disconnected_or_never_seen_hosts_are_down(fake_clock: FakeClock) -> None:
    config = ServeConfig()
    assert not is_up(node(connected=0, last_heartbeat=now_iso()), config)
    assert not is_up(node(connected=1, last_heartbeat=None), config)
