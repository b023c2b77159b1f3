"""Network state version 3 (mininova/protocol/network_members.py): the controller's group
versions and the agent's state that `network_members` orders update."""

from __future__ import annotations

from typing import Any

import pytest

from mininova.protocol.network_members import (
    KEPT_VERSIONS,
    GroupVersions,
    MemberState,
    StaleState,
)


def _state(ips: list[str], version: int = 1, epoch: str = "e1") -> dict[str, Any]:
    return {
        "version": 3,
        "host": "n1",
        "epoch": epoch,
        "remote_groups": {"g": ips},
        "remote_group_versions": {"g": version},
        "instances": [],
    }


def test_a_host_behind_gets_the_difference_and_a_host_far_behind_the_whole_list() -> None:
    groups = GroupVersions()
    assert groups.observe("g", ["10.0.0.1", "10.0.0.2"]) == 1
    assert groups.observe("g", ["10.0.0.2", "10.0.0.1"]) == 1  # same members, same version
    assert groups.observe("g", ["10.0.0.2", "10.0.0.3"]) == 2
    assert groups.change("g", 2) is None
    assert groups.change("g", 1) == {
        "from": 1,
        "version": 2,
        "add": ["10.0.0.3"],
        "remove": ["10.0.0.1"],
    }
    for n in range(KEPT_VERSIONS):
        groups.observe("g", [f"10.0.1.{n}"])
    assert groups.change("g", 1) == {"version": 2 + KEPT_VERSIONS, "ips": ["10.0.1.7"]}


def test_the_agent_applies_changes_and_hands_its_driver_a_version_2_document() -> None:
    held = MemberState()
    document = held.replace(_state(["10.0.0.1", "10.0.0.2"]))
    assert document["version"] == 2 and "epoch" not in document
    order = {
        "epoch": "e1",
        "groups": {"g": {"from": 1, "version": 2, "add": ["10.0.0.3"], "remove": ["10.0.0.1"]}},
    }
    document = held.apply(order)
    assert document["remote_groups"] == {"g": ["10.0.0.2", "10.0.0.3"]}
    assert document["version"] == 2
    assert held.apply({"epoch": "e1", "groups": {"g": {"version": 9, "ips": ["10.0.0.9"]}}})[
        "remote_groups"
    ] == {"g": ["10.0.0.9"]}


@pytest.mark.parametrize(
    "order",
    [
        {"epoch": "e1", "groups": {"g": {"from": 5, "version": 6, "add": [], "remove": []}}},
        {"epoch": "e1", "groups": {"h": {"from": 1, "version": 2, "add": [], "remove": []}}},
        {"epoch": "e2", "groups": {"g": {"from": 1, "version": 2, "add": [], "remove": []}}},
    ],
    ids=["another version", "a group not held", "another controller run"],
)
def test_an_order_that_does_not_fit_the_state_is_refused_and_changes_nothing(
    order: dict[str, Any],
) -> None:
    held = MemberState()
    held.replace(_state(["10.0.0.1"]))
    before = held.state
    with pytest.raises(StaleState):
        held.apply(order)
    assert held.state is before


def test_malformed_orders_and_no_state_at_all() -> None:
    held = MemberState()
    with pytest.raises(StaleState):
        held.apply({"epoch": "e1", "groups": {}})
    held.replace({"version": 2, "host": "n1", "remote_groups": {}, "instances": []})
    with pytest.raises(StaleState):  # a whole version 2 state takes no orders
        held.apply({"epoch": "e1", "groups": {}})
    held.replace(_state(["10.0.0.1"]))
    with pytest.raises(ValueError):
        held.apply({"epoch": "e1", "groups": {"g": {"from": 1, "version": 2, "add": [1]}}})
    with pytest.raises(ValueError):
        held.replace({**_state([]), "remote_group_versions": {}})
    assert held.state is not None and held.state["remote_groups"] == {"g": ["10.0.0.1"]}


def _doc(uuid: str, remote: str | None = "g", port: int = 22) -> dict[str, Any]:
    rule = {"id": f"r-{uuid}", "remote_group_id": remote, "port_range_min": port}
    return {"uuid": uuid, "fixed_ips": [], "ingress": [rule], "egress": []}


def test_version_4_orders_put_and_remove_instance_documents() -> None:
    agent = MemberState()
    agent.replace({**_state(["10.0.0.1"]), "version": 4, "instances": [_doc("a"), _doc("b")]})
    document = agent.apply(
        {
            "epoch": "e1",
            "groups": {"g": {"from": 1, "version": 2, "add": ["10.0.0.3"], "remove": []}},
            "instances": {"put": [_doc("c"), _doc("a", port=80)], "remove": ["b", "gone"]},
        }
    )
    assert document["version"] == 2  # drivers still get a whole version 2 document
    assert [(d["uuid"], d["ingress"][0]["port_range_min"]) for d in document["instances"]] == [
        ("a", 80),  # replaced where it was
        ("c", 22),  # added at the end
    ]
    assert document["remote_groups"] == {"g": ["10.0.0.1", "10.0.0.3"]}
    assert agent.state is not None and agent.state["remote_group_versions"] == {"g": 2}


def test_an_instance_part_that_does_not_fit_is_refused_and_changes_nothing() -> None:
    version_3 = MemberState()
    version_3.replace(_state(["10.0.0.1"]))
    with pytest.raises(StaleState, match="version 3"):
        version_3.apply({"epoch": "e1", "groups": {}, "instances": {"put": [_doc("a")]}})

    agent = MemberState()
    agent.replace({**_state(["10.0.0.1"]), "version": 4, "instances": [_doc("a")]})
    held = agent.state
    with pytest.raises(StaleState, match="names remote group 'other'"):
        agent.apply(
            {
                "epoch": "e1",
                "groups": {"g": {"from": 1, "version": 2, "add": ["10.0.0.9"], "remove": []}},
                "instances": {"put": [_doc("b", remote="other")], "remove": ["a"]},
            }
        )
    for bad in ({"put": [{"no": "uuid"}]}, {"remove": "a"}, {"put": [_doc("b") | {"egress": 1}]}):
        with pytest.raises(ValueError):
            agent.apply({"epoch": "e1", "groups": {}, "instances": bad})
    assert agent.state is held  # neither the groups nor the instances changed
