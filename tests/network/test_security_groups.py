"""Security groups in-process: Neutron's /v2.0/security-groups and rules (the default group,
validation, visibility, quotas, in-use), Nova's server create / actions / proxies, and the
hosts cast to the conductor when allowed traffic changes."""

from __future__ import annotations

from typing import Any

import pytest

from mininova import quota
from mininova.controller import Controller
from mininova.network.security_groups import TUNNEL_SOURCE, tunnel_allows
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.network.test_network_api import SERVERS, N, host, neutron_error

__all__ = ["host"]

SG = N + "/security-groups"
RULES = N + "/security-group-rules"
NOVA_SG = "/compute/v2.1/os-security-groups"
GROUP_KEYS = {
    "id",
    "name",
    "tenant_id",
    "project_id",
    "description",
    "stateful",
    "shared",
    "is_default",
    "security_group_rules",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
}


async def _group(api: ApiClient, name: str, **extra: Any) -> dict:
    status, body, _ = await api.post(SG, json={"security_group": {"name": name, **extra}})
    assert status == 201, body
    return body["security_group"]


async def _rule(api: ApiClient, group_id: str, **fields: Any) -> tuple[int, dict]:
    rule = {"security_group_id": group_id, "direction": "ingress", **fields}
    status, body, _ = await api.post(RULES, json={"security_group_rule": rule})
    return status, body


async def _default(api: ApiClient) -> dict:
    status, body, _ = await api.get(SG + "?name=default")
    assert status == 200, body
    (group,) = body["security_groups"]
    return group


def _shape(rule: dict) -> tuple:
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_group_id"])


async def test_default_group_made_on_first_use(member_api: ApiClient) -> None:
    group = await _default(member_api)
    assert set(group) == GROUP_KEYS
    assert group["project_id"] == group["tenant_id"] == member_api.project_id
    assert group["stateful"] is True and group["shared"] is False and group["tags"] == []
    assert group["revision_number"] >= 1 and group["created_at"].endswith("Z")
    assert sorted(_shape(r) for r in group["security_group_rules"]) == [
        ("egress", "IPv4", None, None),
        ("egress", "IPv6", None, None),
        ("ingress", "IPv4", None, group["id"]),
        ("ingress", "IPv6", None, group["id"]),
    ]
    assert all(r["belongs_to_default_sg"] for r in group["security_group_rules"])
    # one default only, whatever is asked first
    _, listed, _ = await member_api.get(SG)
    assert [g["name"] for g in listed["security_groups"]] == ["default"]
    status, body, _ = await member_api.delete(f"{SG}/{group['id']}")
    assert status == 409
    assert "default security group" in neutron_error(body, "SecurityGroupCannotRemoveDefault")


async def test_group_crud_fields_filters_and_paging(api: ApiClient) -> None:
    web = await _group(api, "web", description="front ends")
    assert sorted(_shape(r) for r in web["security_group_rules"]) == [
        ("egress", "IPv4", None, None),
        ("egress", "IPv6", None, None),
    ]
    assert web["is_default"] is False and web["description"] == "front ends"
    await _group(api, "db")
    status, body, _ = await api.get(f"{SG}/{web['id']}?fields=id&fields=name")
    assert status == 200 and body == {"security_group": {"id": web["id"], "name": "web"}}
    _, body, _ = await api.get(SG + "?sort_key=name&sort_dir=asc&fields=name")
    assert [g["name"] for g in body["security_groups"]] == ["db", "default", "web"]
    _, body, _ = await api.get(SG + "?sort_key=name&limit=1")
    assert len(body["security_groups"]) == 1 and "security_groups_links" in body
    status, body, _ = await api.get(SG + "?colour=blue")
    assert status == 400 and "invalid attribute for filtering" in neutron_error(body)

    status, body, _ = await api.put(
        f"{SG}/{web['id']}", json={"security_group": {"name": "www", "description": "d"}}
    )
    assert status == 200, body
    updated = body["security_group"]
    assert updated["name"] == "www" and updated["description"] == "d"
    assert updated["revision_number"] > web["revision_number"]
    status, body, _ = await api.put(f"{SG}/{web['id']}", json={"security_group": {"bad": 1}})
    assert status == 400 and "Unrecognized attribute" in neutron_error(body)

    assert (await api.delete(f"{SG}/{web['id']}"))[0] == 204
    status, body, _ = await api.get(f"{SG}/{web['id']}")
    assert status == 404
    assert neutron_error(body, "SecurityGroupNotFound") == (
        f"Security group {web['id']} does not exist"
    )


async def test_rules_normalised_listed_and_deleted(api: ApiClient) -> None:
    web = await _group(api, "web")
    status, body = await _rule(api, web["id"], protocol="TCP", port_range_min=22)
    assert status == 201, body
    ssh = body["security_group_rule"]
    assert (ssh["protocol"], ssh["port_range_min"], ssh["port_range_max"]) == ("tcp", 22, 22)
    assert ssh["ethertype"] == "IPv4" and ssh["remote_ip_prefix"] is None
    assert ssh["project_id"] == api.project_id and ssh["belongs_to_default_sg"] is False
    status, body = await _rule(
        api, web["id"], protocol="udp", port_range_min=53, remote_ip_prefix="10.1.2.3/8"
    )
    assert status == 201 and body["security_group_rule"]["remote_ip_prefix"] == "10.0.0.0/8"
    status, body = await _rule(
        api, web["id"], protocol="icmp", port_range_min=8, port_range_max=0, ethertype="IPv4"
    )
    assert status == 201, body
    status, body = await _rule(api, web["id"], protocol="ipv6-icmp", ethertype="IPv6")
    assert status == 201, body
    status, body = await _rule(api, web["id"], protocol="47")
    assert status == 201 and body["security_group_rule"]["protocol"] == "47"

    _, body, _ = await api.get(f"{RULES}?security_group_id={web['id']}&direction=ingress")
    assert len(body["security_group_rules"]) == 5
    _, shown, _ = await api.get(f"{SG}/{web['id']}")
    assert len(shown["security_group"]["security_group_rules"]) == 7
    status, body, _ = await api.get(f"{RULES}/{ssh['id']}?fields=protocol")
    assert status == 200 and body == {"security_group_rule": {"protocol": "tcp"}}

    status, body = await _rule(api, web["id"], protocol="tcp", port_range_min=22)
    assert status == 409
    assert ssh["id"] in neutron_error(body, "SecurityGroupRuleExists")
    assert (await api.delete(f"{RULES}/{ssh['id']}"))[0] == 204
    status, body, _ = await api.get(f"{RULES}/{ssh['id']}")
    assert status == 404 and neutron_error(body, "SecurityGroupRuleNotFound")


@pytest.mark.parametrize(
    ("fields", "kind", "text"),
    [
        ({"protocol": "tcp", "port_range_min": 0}, "SecurityGroupInvalidPortValue", "port 0"),
        ({"protocol": "tcp", "port_range_min": 70000}, "SecurityGroupInvalidPortValue", "70000"),
        (
            {"protocol": "udp", "port_range_min": 90, "port_range_max": 80},
            "SecurityGroupInvalidPortRange",
            "port_range_min must be <= port_range_max",
        ),
        ({"protocol": "gopher"}, "SecurityGroupRuleInvalidProtocol", "gopher not supported"),
        ({"protocol": "256"}, "SecurityGroupRuleInvalidProtocol", "[0 to 255]"),
        ({"port_range_min": 22}, "SecurityGroupProtocolRequiredWithPorts", "protocol"),
        ({"protocol": "47", "port_range_min": 1}, "SecurityGroupInvalidProtocolForPort", "47"),
        (
            {"protocol": "icmp", "port_range_min": 300},
            "SecurityGroupInvalidIcmpValue",
            "ICMP type (port_range_min) 300",
        ),
        (
            {"protocol": "icmp", "port_range_max": 1},
            "SecurityGroupMissingIcmpType",
            "ICMP type (port-range-min) is missing",
        ),
        ({"remote_ip_prefix": "10.0.0.300/8"}, "InvalidInput", "is not a valid IP subnet"),
        (
            {"remote_ip_prefix": "::/0", "ethertype": "IPv4"},
            "SecurityGroupRuleParameterConflict",
            "Conflicting value ethertype IPv4",
        ),
        ({"ethertype": "IPv5"}, "SecurityGroupRuleInvalidEtherType", "IPv5"),
        ({"direction": "sideways"}, "InvalidInput", "sideways"),
        (
            {"protocol": "icmpv6", "ethertype": "IPv4"},
            "SecurityGroupEthertypeConflictWithProtocol",
            "icmpv6",
        ),
    ],
)
async def test_invalid_rules(api: ApiClient, fields: dict, kind: str, text: str) -> None:
    group = await _default(api)
    status, body = await _rule(api, group["id"], **fields)
    assert status == 400, body
    assert text in neutron_error(body, kind)


async def test_remote_group_rules(api: ApiClient, member_api: ApiClient) -> None:
    web, db = await _group(api, "web"), await _group(api, "db")
    status, body = await _rule(
        api, web["id"], remote_group_id=db["id"], remote_ip_prefix="10.0.0.0/8"
    )
    assert status == 400
    assert neutron_error(body, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
    status, body = await _rule(api, db["id"], protocol="tcp", remote_group_id=web["id"])
    assert status == 201, body
    other = await _default(member_api)
    status, body = await _rule(member_api, other["id"], remote_group_id=web["id"])
    assert status == 404 and web["id"] in neutron_error(body, "SecurityGroupNotFound")
    # a group named as remote takes those rules with it
    assert (await api.delete(f"{SG}/{web['id']}"))[0] == 204
    _, body, _ = await api.get(f"{RULES}?security_group_id={db['id']}&direction=ingress")
    assert body["security_group_rules"] == []


async def test_projects_do_not_see_each_other(api: ApiClient, member_api: ApiClient) -> None:
    admins = await _group(api, "admins-only")
    for path in (f"{SG}/{admins['id']}",):
        status, body, _ = await member_api.get(path)
        assert status == 404 and neutron_error(body, "SecurityGroupNotFound")
    status, body, _ = await member_api.delete(f"{SG}/{admins['id']}")
    assert status == 404
    status, body = await _rule(member_api, admins["id"], protocol="tcp")
    assert status == 404 and neutron_error(body, "SecurityGroupNotFound")
    rule_id = admins["security_group_rules"][0]["id"]
    assert (await member_api.get(f"{RULES}/{rule_id}"))[0] == 404
    assert (await member_api.delete(f"{RULES}/{rule_id}"))[0] == 404
    _, body, _ = await member_api.get(SG)
    assert {g["project_id"] for g in body["security_groups"]} == {member_api.project_id}
    _, body, _ = await member_api.get(RULES)
    assert {r["project_id"] for r in body["security_group_rules"]} == {member_api.project_id}
    # the admin sees every project's, and may make one for another project
    await _default(member_api)
    _, body, _ = await api.get(SG + "?name=default")
    assert {g["project_id"] for g in body["security_groups"]} >= {
        api.project_id,
        member_api.project_id,
    }
    theirs = await _group(api, "theirs", project_id=member_api.project_id)
    assert theirs["project_id"] == member_api.project_id
    assert (await member_api.get(f"{SG}/{theirs['id']}"))[0] == 200
    status, body, _ = await member_api.post(
        SG, json={"security_group": {"name": "x", "project_id": api.project_id}}
    )
    assert status == 400


async def test_quotas(api: ApiClient, member_api: ApiClient, controller: Controller) -> None:
    store = controller.services.store
    pid = member_api.project_id
    await quota.set_limits(store, pid, {"security_groups": 2, "security_group_rules": 7})
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}")
    assert body["quota"]["security_group"] == 2 and body["quota"]["security_group_rule"] == 7
    await _group(member_api, "one")  # default (4 rules) + one (2 rules)
    status, body, _ = await member_api.post(SG, json={"security_group": {"name": "two"}})
    assert status == 409
    assert neutron_error(body, "OverQuota") == "Quota exceeded for resources: ['security_group']."
    group = await _default(member_api)
    status, body = await _rule(member_api, group["id"], protocol="tcp", port_range_min=22)
    assert status == 201, body
    status, body = await _rule(member_api, group["id"], protocol="tcp", port_range_min=80)
    assert status == 409
    assert neutron_error(body, "OverQuota") == (
        "Quota exceeded for resources: ['security_group_rule']."
    )
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}/details")
    assert body["quota"]["security_group"] == {"limit": 2, "used": 2, "reserved": 0}
    assert body["quota"]["security_group_rule"] == {"limit": 7, "used": 7, "reserved": 0}
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}/default")
    assert body["quota"]["security_group"] == 10 and body["quota"]["security_group_rule"] == 20


async def _boot(api: ApiClient, name: str, **extra: Any) -> tuple[int, dict]:
    image = await api.upload_image(name + "-img")
    server = {"name": name, "imageRef": image, "flavorRef": "1", "networks": "auto", **extra}
    status, body, _ = await api.post(SERVERS, json={"server": server}, version="2.100")
    return status, body


async def test_servers_groups_actions_and_sync(
    api: ApiClient, controller: Controller, host: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[list[str]] = []
    monkeypatch.setattr(controller.services.conductor, "sync_network", synced.append)
    web = await _group(api, "web")
    status, body = await _boot(api, "plain")
    assert status == 202 and body["server"]["security_groups"] == [{"name": "default"}]
    plain = body["server"]["id"]
    status, body = await _boot(
        api, "front", security_groups=[{"name": "web"}, {"name": web["id"]}, {"name": "default"}]
    )
    assert status == 202, body
    front = body["server"]["id"]
    assert body["server"]["security_groups"] == [{"name": "default"}, {"name": "web"}]
    status, body = await _boot(api, "bad", security_groups=[{"name": "nope"}])
    assert status == 400
    assert body["badRequest"]["message"] == "Unable to find security_group with name or id 'nope'"
    await api.wait_server(front, "ACTIVE")
    await api.wait_server(plain, "ACTIVE")
    _, body, _ = await api.get(f"{SERVERS}/{front}")
    assert body["server"]["security_groups"] == [{"name": "default"}, {"name": "web"}]
    _, body, _ = await api.get(f"{SERVERS}/detail?name=plain")
    assert [s["security_groups"] for s in body["servers"]] == [[{"name": "default"}]]

    status, body, _ = await api.delete(f"{SG}/{web['id']}")
    assert status == 409 and f"{web['id']} in use" in neutron_error(body, "SecurityGroupInUse")
    synced.clear()
    status, body = await _rule(api, web["id"], protocol="tcp", port_range_min=80)
    assert status == 201 and synced == [["node1"]]

    action = f"{SERVERS}/{plain}/action"
    synced.clear()
    assert (await api.post(action, json={"addSecurityGroup": {"name": "web"}}))[0] == 202
    assert [sorted(set(hosts)) for hosts in synced] == [["node1"]]
    status, body, _ = await api.post(action, json={"addSecurityGroup": {"name": "web"}})
    assert status == 400 and "already associated" in body["badRequest"]["message"]
    status, body, _ = await api.post(action, json={"addSecurityGroup": {"name": "nope"}})
    assert status == 404 and body["itemNotFound"]["message"] == "Security group nope not found."
    _, body, _ = await api.get(f"{SERVERS}/{plain}/os-security-groups")
    assert sorted(g["name"] for g in body["security_groups"]) == ["default", "web"]
    assert (await api.post(action, json={"removeSecurityGroup": {"name": "web"}}))[0] == 202
    status, body, _ = await api.post(action, json={"removeSecurityGroup": {"name": "web"}})
    assert status == 400 and "not associated" in body["badRequest"]["message"]
    status, _, _ = await api.post(action, json={"removeSecurityGroup": {}})
    assert status == 400

    # a deleted server's membership no longer holds the group
    await api.delete(f"{SERVERS}/{front}")

    async def gone() -> bool:
        return (await api.get(f"{SERVERS}/{front}"))[0] == 404

    from tests.kit.wait import wait_for

    await wait_for(gone, 10, 0.05, "the server to go")
    assert (await api.delete(f"{SG}/{web['id']}"))[0] == 204


async def test_nova_proxies_below_2_36(api: ApiClient) -> None:
    status, body, _ = await api.post(
        NOVA_SG, json={"security_group": {"name": "legacy", "description": "old"}}, version="2.1"
    )
    assert status == 200, body
    group = body["security_group"]
    assert group["rules"] == [] and group["tenant_id"] == api.project_id
    rule = {
        "parent_group_id": group["id"],
        "ip_protocol": "tcp",
        "from_port": 22,
        "to_port": 22,
        "cidr": "10.0.0.0/24",
    }
    status, body, _ = await api.post(
        "/compute/v2.1/os-security-group-rules", json={"security_group_rule": rule}, version="2.1"
    )
    assert status == 200, body
    nova_rule = body["security_group_rule"]
    assert nova_rule["ip_range"] == {"cidr": "10.0.0.0/24"} and nova_rule["from_port"] == 22
    status, body, _ = await api.post(
        "/compute/v2.1/os-security-group-rules", json={"security_group_rule": rule}, version="2.1"
    )
    assert status == 400 and "already exists" in body["badRequest"]["message"]
    # the same record through Neutron
    _, body, _ = await api.get(f"{SG}/{group['id']}")
    assert any(r["port_range_min"] == 22 for r in body["security_group"]["security_group_rules"])
    _, body, _ = await api.get(NOVA_SG, version="2.1")
    assert {"default", "legacy"} <= {g["name"] for g in body["security_groups"]}
    _, body, _ = await api.get(f"{NOVA_SG}/{group['id']}", version="2.35")
    assert [r["id"] for r in body["security_group"]["rules"]] == [nova_rule["id"]]
    for version in ("2.36", "2.100"):
        assert (await api.get(NOVA_SG, version=version))[0] == 404
        assert (await api.delete(f"{NOVA_SG}/{group['id']}", version=version))[0] == 404
    rule_path = f"/compute/v2.1/os-security-group-rules/{nova_rule['id']}"
    assert (await api.delete(rule_path, version="2.1"))[0] == 202
    assert (await api.delete(rule_path, version="2.1"))[0] == 404
    assert (await api.delete(f"{NOVA_SG}/{group['id']}", version="2.1"))[0] == 202
    assert (await api.get(f"{NOVA_SG}/{group['id']}", version="2.1"))[0] == 404


def _ingress(**fields: Any) -> dict[str, Any]:
    rule = {
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": None,
    }
    rule.update(fields)
    return rule


@pytest.mark.parametrize(
    ("rule", "allowed"),
    [
        (_ingress(port_range_min=22, port_range_max=22), True),
        (_ingress(port_range_min=20, port_range_max=30), True),
        (_ingress(port_range_min=23, port_range_max=80), False),
        (_ingress(protocol=None), True),
        (_ingress(protocol="6"), True),
        (_ingress(protocol="udp"), False),
        (_ingress(remote_ip_prefix="192.168.122.0/24"), True),
        (_ingress(remote_ip_prefix="10.0.0.0/8"), False),
        (_ingress(remote_group_id="g"), False),
        (_ingress(direction="egress"), False),
        (_ingress(ethertype="IPv6", remote_ip_prefix="::/0"), False),
    ],
)
def test_tunnel_allows(rule: dict, allowed: bool) -> None:
    assert tunnel_allows([rule], 22, TUNNEL_SOURCE) is allowed
