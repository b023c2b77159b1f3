"""What the agents are told to enforce: the conductor pushes a host's whole network state
(`network_sync`) after every change, and refused requests change nothing on any host."""

from __future__ import annotations

from typing import Any

from mininova.controller import Controller
from mininova.network.hoststate import desired_state
from mininova.virt.fake import FakeDriver
from mininova.virt.libvirt.firewall import parse_state
from tests.conftest import ApiClient
from tests.kit.wait import wait_for
from tests.network.test_network_api import N, _boot, _private, host, neutron_error

__all__ = ["host"]

RULES = N + "/security-group-rules"


def _instance(driver: FakeDriver, uuid: str) -> dict[str, Any] | None:
    state = driver.network_state or {}
    return next((i for i in state.get("instances", []) if i["uuid"] == uuid), None)


def _ingress_ports(driver: FakeDriver, uuid: str) -> list[tuple[str | None, int | None]]:
    instance = _instance(driver, uuid) or {"ingress": []}
    return sorted(
        (r["protocol"], r["port_range_min"])
        for r in instance["ingress"]
        if r["remote_group_id"] is None
    )


async def _rule(client: ApiClient, group_id: str, **fields: Any) -> tuple[int, dict]:
    rule = {"security_group_id": group_id, "direction": "ingress", **fields}
    status, body, _ = await client.post(RULES, json={"security_group_rule": rule})
    return status, body


async def test_pushes_follow_changes_and_refusals_push_nothing(
    api: ApiClient, member_api: ApiClient, host: FakeDriver
) -> None:
    private = await _private(api)
    status, body = await _boot(member_api, "pushvm", [{"uuid": private["id"]}])
    assert status == 202, body
    uuid = body["server"]["id"]
    await member_api.wait_server(uuid, "ACTIVE")
    await wait_for(lambda: _instance(host, uuid) is not None, 10, 0.05, "the first push")
    assert _ingress_ports(host, uuid) == []  # the default group admits only its own members

    _, groups, _ = await member_api.get(N + "/security-groups?name=default")
    (default,) = groups["security_groups"]
    status, body = await _rule(
        member_api, default["id"], protocol="tcp", port_range_min=22, port_range_max=22
    )
    assert status == 201, body
    await wait_for(lambda: _ingress_ports(host, uuid) == [("tcp", 22)], 10, 0.05, "the tcp/22 push")

    # Refused requests: Neutron's statuses, and not one rule reaches a host.
    refused = [
        ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10}, 400),
        ({"protocol": "tcp", "port_range_min": 80, "port_range_max": 70000}, 400),
        ({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, 400),
        ({"protocol": "bogus"}, 400),
        ({"protocol": "tcp", "remote_ip_prefix": "10.0.0.0/33"}, 400),
        ({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22}, 409),
    ]
    for fields, expected in refused:
        status, body = await _rule(member_api, default["id"], **fields)
        assert status == expected, (fields, body)
        neutron_error(body)
    # A rule on another project's group: that group does not exist for this member.
    status, admins, _ = await api.post(
        N + "/security-groups", json={"security_group": {"name": "admins-only"}}
    )
    assert status == 201, admins
    status, body = await _rule(member_api, admins["security_group"]["id"], protocol="tcp")
    assert status == 404, body
    assert neutron_error(body, "SecurityGroupNotFound")

    # The next accepted change is pushed, and the state holds exactly the accepted rules.
    status, body = await _rule(
        member_api, default["id"], protocol="tcp", port_range_min=80, port_range_max=80
    )
    assert status == 201, body
    await wait_for(
        lambda: _ingress_ports(host, uuid) == [("tcp", 22), ("tcp", 80)],
        10,
        0.05,
        "the tcp/80 push",
    )

    status, _, _ = await member_api.delete(f"{RULES}/{body['security_group_rule']['id']}")
    assert status == 204
    await wait_for(
        lambda: _ingress_ports(host, uuid) == [("tcp", 22)], 10, 0.05, "the rule's removal"
    )
    status, _, _ = await member_api.delete(f"/compute/v2.1/servers/{uuid}")
    assert status == 204
    await wait_for(lambda: _instance(host, uuid) is None, 10, 0.05, "the server to leave")


async def test_agents_get_the_compact_state_and_it_means_what_version_1_says(
    api: ApiClient, member_api: ApiClient, host: FakeDriver, controller: Controller
) -> None:
    """Today's agents say they take version 2: each remote group's addresses come once, in
    `remote_groups`, and the firewall reads the same rules from it as from version 1."""
    private = await _private(api)
    uuids = []
    for name in ("compact1", "compact2"):
        status, body = await _boot(member_api, name, [{"uuid": private["id"]}])
        assert status == 202, body
        uuids.append(body["server"]["id"])
    for uuid in uuids:
        await member_api.wait_server(uuid, "ACTIVE")

    def both_pushed() -> bool:
        state = host.network_state or {}
        docs = {i["uuid"]: i for i in state.get("instances", [])}
        return all(u in docs and docs[u]["fixed_ips"] for u in uuids) and all(
            len(ips) == 2 for ips in state.get("remote_groups", {}).values()
        )

    await wait_for(both_pushed, 10, 0.05, "a push naming both servers")
    state = host.network_state or {}
    assert state["version"] == 2
    (default_id,) = state["remote_groups"]
    fixed = sorted(ip for i in state["instances"] for ip in i["fixed_ips"])
    assert sorted(state["remote_groups"][default_id]) == fixed
    for doc in state["instances"]:
        for rule in doc["ingress"] + doc["egress"]:
            assert "remote_ips" not in rule

    full = await desired_state(controller.store, state["host"], version=1)
    assert parse_state(full) == parse_state(state)
    assert parse_state(full).guests[0].ingress  # the default group's rule from its members
