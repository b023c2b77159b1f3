"""Server groups: API shapes per microversion, isolation, the `group` hint, quotas, and the
scheduler's (anti-)affinity with two in-process fake agents; plus the real OSC CLI."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.controller import Controller
from mininova.virt.fake import FakeDriver
from tests.api.cli import run_openstack
from tests.conftest import ApiClient
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

GROUPS = "/compute/v2.1/os-server-groups"
SERVERS = "/compute/v2.1/servers"
KEYS_21 = {"id", "name", "policies", "members", "metadata"}
KEYS_213 = KEYS_21 | {"project_id", "user_id"}
KEYS_264 = {"id", "name", "policy", "rules", "members", "project_id", "user_id"}


async def _group(
    api: ApiClient,
    name: str = "grp1",
    policy: str = "anti-affinity",
    rules: dict | None = None,
    version: str = "2.64",
) -> dict:
    spec: dict = {"name": name, "policy": policy}
    if rules is not None:
        spec["rules"] = rules
    status, body, _ = await api.post(GROUPS, json={"server_group": spec}, version=version)
    assert status == 200, body
    return body["server_group"]


async def _boot(
    api: ApiClient,
    image: str,
    name: str,
    group: str | None,
    hint_key: str = "OS-SCH-HNT:scheduler_hints",
    **server: object,
) -> tuple[int, dict]:
    body: dict = {
        "server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none", **server}
    }
    if group is not None:
        body[hint_key] = {"group": group}
    status, resp, _ = await api.post(SERVERS, json=body, version="2.100")
    return status, resp


async def _wait_gone(api: ApiClient, uuid: str) -> None:
    async def gone() -> bool:
        return (await api.get(f"{SERVERS}/{uuid}"))[0] == 404

    await wait_for(gone, 10, 0.05, f"{uuid} to be deleted")


# ---- API shapes -------------------------------------------------------------------------------


async def test_shapes_at_2_1_2_13_and_2_64(api: ApiClient) -> None:
    status, body, _ = await api.post(
        GROUPS, json={"server_group": {"name": "old", "policies": ["anti-affinity"]}}
    )
    assert status == 200, body
    old = body["server_group"]
    assert set(old) == KEYS_21
    assert old["policies"] == ["anti-affinity"] and old["members"] == [] and old["metadata"] == {}
    _, shown, _ = await api.get(f"{GROUPS}/{old['id']}")
    assert shown["server_group"] == old
    _, at213, _ = await api.get(f"{GROUPS}/{old['id']}", version="2.13")
    assert set(at213["server_group"]) == KEYS_213
    assert at213["server_group"]["project_id"] == api.project_id
    assert at213["server_group"]["user_id"] == api.user_id

    new = await _group(api, "new", rules={"max_server_per_host": 2})
    assert set(new) == KEYS_264
    assert new["policy"] == "anti-affinity" and new["rules"] == {"max_server_per_host": 2}
    assert new["project_id"] == api.project_id and new["user_id"] == api.user_id
    _, shown, _ = await api.get(f"{GROUPS}/{new['id']}", version="2.64")
    assert shown["server_group"] == new
    plain = await _group(api, "plain", policy="affinity")
    assert plain["rules"] == {}
    _, at64, _ = await api.get(f"{GROUPS}/{old['id']}", version="2.64")
    assert at64["server_group"]["policy"] == "anti-affinity"
    assert at64["server_group"]["rules"] == {}
    _, legacy, _ = await api.get(f"{GROUPS}/{new['id']}")
    assert legacy["server_group"]["policies"] == ["anti-affinity"]

    _, listed, _ = await api.get(GROUPS, version="2.64")
    assert [g["name"] for g in listed["server_groups"]] == ["old", "new", "plain"]
    assert all(set(g) == KEYS_264 for g in listed["server_groups"])
    _, page, _ = await api.get(GROUPS + "?limit=1&offset=1", version="2.64")
    assert [g["name"] for g in page["server_groups"]] == ["new"]

    status, _, _ = await api.delete(f"{GROUPS}/{new['id']}", version="2.64")
    assert status == 204
    status, err, _ = await api.get(f"{GROUPS}/{new['id']}", version="2.64")
    assert status == 404 and "itemNotFound" in err
    status, _, _ = await api.delete(f"{GROUPS}/{new['id']}", version="2.64")
    assert status == 404
    status, _, _ = await api.get(f"{GROUPS}/grp-by-name", version="2.64")
    assert status == 404


@pytest.mark.parametrize(
    ("version", "spec"),
    [
        ("2.1", {"name": "g", "policies": ["spread"]}),
        ("2.1", {"name": "g", "policies": ["affinity", "anti-affinity"]}),
        ("2.1", {"name": "g", "policies": []}),
        ("2.1", {"name": "g", "policies": ["soft-affinity"]}),  # soft-* only from 2.15
        ("2.1", {"name": "g", "policy": "affinity"}),
        ("2.1", {"policies": ["affinity"]}),
        ("2.64", {"name": "g", "policies": ["affinity"]}),
        ("2.64", {"name": "g", "policy": "spread"}),
        ("2.64", {"name": "g"}),
        ("2.64", {"name": "", "policy": "affinity"}),
        ("2.64", {"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}}),
        ("2.64", {"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}),
        ("2.64", {"name": "g", "policy": "anti-affinity", "rules": {"other": 1}}),
    ],
)
async def test_invalid_create_is_400(api: ApiClient, version: str, spec: dict) -> None:
    status, err, _ = await api.post(GROUPS, json={"server_group": spec}, version=version)
    assert status == 400, err
    assert "badRequest" in err


async def test_soft_policies_from_2_15(api: ApiClient) -> None:
    status, body, _ = await api.post(
        GROUPS,
        json={"server_group": {"name": "s", "policies": ["soft-anti-affinity"]}},
        version="2.15",
    )
    assert status == 200, body
    assert body["server_group"]["policies"] == ["soft-anti-affinity"]
    soft = await _group(api, "s2", policy="soft-affinity")
    assert soft["policy"] == "soft-affinity"


async def test_projects_do_not_see_each_others_groups(
    api: ApiClient, member_api: ApiClient
) -> None:
    admin_group = await _group(api, "admin-grp")
    member_group = await _group(member_api, "member-grp")
    assert member_group["project_id"] == member_api.project_id

    status, _, _ = await member_api.get(f"{GROUPS}/{admin_group['id']}", version="2.64")
    assert status == 404
    status, _, _ = await member_api.delete(f"{GROUPS}/{admin_group['id']}", version="2.64")
    assert status == 404
    _, listed, _ = await member_api.get(GROUPS + "?all_projects=True", version="2.64")
    assert [g["id"] for g in listed["server_groups"]] == [member_group["id"]]

    _, listed, _ = await api.get(GROUPS, version="2.64")
    assert [g["id"] for g in listed["server_groups"]] == [admin_group["id"]]
    _, listed, _ = await api.get(GROUPS + "?all_projects=True", version="2.64")
    assert {g["id"] for g in listed["server_groups"]} == {admin_group["id"], member_group["id"]}
    status, _, _ = await api.get(f"{GROUPS}/{member_group['id']}", version="2.64")
    assert status == 200


# ---- the group hint, membership, quotas ------------------------------------------------------


async def test_group_hint_membership_and_server_groups_field(
    api: ApiClient, member_api: ApiClient
) -> None:
    image = await api.upload_image()
    group = await _group(api)
    status, err = await _boot(api, image, "vm", "4b0e0f0a-0000-4000-8000-000000000000")
    assert status == 400 and "could not be found" in err["badRequest"]["message"]
    status, err = await _boot(api, image, "vm", "not-a-group", hint_key="os:scheduler_hints")
    assert status == 400
    # Another project's group is not visible to a member: 400, nothing created.
    member_image = await member_api.upload_image()
    status, err = await _boot(member_api, member_image, "vm", group["id"])
    assert status == 400, err
    _, servers, _ = await member_api.get(SERVERS)
    assert servers["servers"] == []

    status, body = await _boot(api, image, "vm", group["id"], hint_key="os:scheduler_hints")
    assert status == 202, body
    uuid = body["server"]["id"]
    _, shown, _ = await api.get(f"{GROUPS}/{group['id']}", version="2.64")
    assert shown["server_group"]["members"] == [uuid]
    server = await api.wait_server(uuid, "ERROR")  # no compute hosts in this test
    assert server["server_groups"] == [group["id"]]
    assert server["scheduler_hints"] == {"group": group["id"]}
    status, updated, _ = await api.put(
        f"{SERVERS}/{uuid}", json={"server": {"name": "vm2"}}, version="2.71"
    )
    assert status == 200 and updated["server"]["server_groups"] == [group["id"]]
    _, detail, _ = await api.get(f"{SERVERS}/detail", version="2.100")
    assert "server_groups" not in detail["servers"][0]

    status, _, _ = await api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    await _wait_gone(api, uuid)
    _, shown, _ = await api.get(f"{GROUPS}/{group['id']}", version="2.64")
    assert shown["server_group"]["members"] == []

    # Deleting a group with a member leaves the server, without a group.
    status, body = await _boot(api, image, "vm3", group["id"])
    assert status == 202
    status, _, _ = await api.delete(f"{GROUPS}/{group['id']}", version="2.64")
    assert status == 204
    _, shown, _ = await api.get(f"{SERVERS}/{body['server']['id']}", version="2.71")
    assert shown["server"]["server_groups"] == []


async def test_server_group_quotas(api: ApiClient) -> None:
    status, _, _ = await api.put(
        f"/compute/v2.1/os-quota-sets/{api.project_id}",
        json={"quota_set": {"server_groups": 2, "server_group_members": 2}},
    )
    assert status == 200
    image = await api.upload_image()
    first = await _group(api, "g1")
    await _group(api, "g2")
    status, err, _ = await api.post(
        GROUPS, json={"server_group": {"name": "g3", "policy": "affinity"}}, version="2.64"
    )
    assert status == 403 and "server groups" in err["forbidden"]["message"]
    _, limits, _ = await api.get("/compute/v2.1/limits")
    assert limits["limits"]["absolute"]["totalServerGroupsUsed"] == 2
    assert limits["limits"]["absolute"]["maxServerGroupMembers"] == 2

    status, err = await _boot(api, image, "many", first["id"], min_count=3)
    assert status == 403, err
    status, _ = await _boot(api, image, "two", first["id"], min_count=2)
    assert status == 202
    status, err = await _boot(api, image, "one-more", first["id"])
    assert status == 403 and "too many servers in group" in err["forbidden"]["message"]
    _, shown, _ = await api.get(f"{GROUPS}/{first['id']}", version="2.64")
    assert len(shown["server_group"]["members"]) == 2


# ---- scheduling with two fake hosts -------------------------------------------------------------


@pytest.fixture
async def two_hosts(
    api: ApiClient, controller: Controller, tmp_path: Path
) -> AsyncIterator[list[FakeDriver]]:
    assert controller.credentials is not None
    async with contextlib.AsyncExitStack() as stack:
        drivers = [
            await stack.enter_async_context(fake_agent(controller, tmp_path, host))
            for host in ("node1", "node2")
        ]

        async def both_up() -> bool:
            _, body, _ = await api.get("/compute/v2.1/os-hypervisors/detail", version="2.88")
            return sum(h["state"] == "up" for h in body["hypervisors"]) == 2

        await wait_for(both_up, 5, 0.05, "both hosts to read up")
        yield drivers


async def test_anti_affinity_spreads_then_fails(api: ApiClient, two_hosts) -> None:
    image = await api.upload_image()
    group = await _group(api, "anti")
    hosts = []
    for name in ("a1", "a2"):
        status, body = await _boot(api, image, name, group["id"])
        assert status == 202, body
        server = await api.wait_server(body["server"]["id"], "ACTIVE", "ERROR")
        assert server["status"] == "ACTIVE", server.get("fault")
        hosts.append(server["OS-EXT-SRV-ATTR:host"])
    assert sorted(hosts) == ["node1", "node2"]
    status, body = await _boot(api, image, "a3", group["id"])
    assert status == 202
    server = await api.wait_server(body["server"]["id"], "ACTIVE", "ERROR")
    assert server["status"] == "ERROR"
    assert "No valid host" in server["fault"]["message"]
    assert "anti-affinity" in server["fault"]["message"]

    # Deleting a member frees its host for the group again.
    _, shown, _ = await api.get(f"{GROUPS}/{group['id']}", version="2.64")
    assert len(shown["server_group"]["members"]) == 3
    first = shown["server_group"]["members"][0]
    status, _, _ = await api.delete(f"{SERVERS}/{first}")
    assert status == 204
    await _wait_gone(api, first)
    status, body = await _boot(api, image, "a4", group["id"])
    server = await api.wait_server(body["server"]["id"], "ACTIVE", "ERROR")
    assert server["status"] == "ACTIVE", server.get("fault")
    assert server["OS-EXT-SRV-ATTR:host"] == hosts[0]


async def test_anti_affinity_max_server_per_host(api: ApiClient, two_hosts) -> None:
    image = await api.upload_image()
    group = await _group(api, "anti2", rules={"max_server_per_host": 2})
    status, body = await _boot(api, image, "m", group["id"], min_count=4)
    assert status == 202, body
    _, shown, _ = await api.get(f"{GROUPS}/{group['id']}", version="2.64")
    hosts = []
    for uuid in shown["server_group"]["members"]:
        server = await api.wait_server(uuid, "ACTIVE", "ERROR")
        assert server["status"] == "ACTIVE", server.get("fault")
        hosts.append(server["OS-EXT-SRV-ATTR:host"])
    assert sorted(hosts) == ["node1", "node1", "node2", "node2"]
    status, body = await _boot(api, image, "m5", group["id"])
    server = await api.wait_server(body["server"]["id"], "ACTIVE", "ERROR")
    assert server["status"] == "ERROR" and "anti-affinity" in server["fault"]["message"]


@pytest.mark.parametrize(
    ("policy", "distinct"), [("affinity", 1), ("soft-affinity", 1), ("soft-anti-affinity", 2)]
)
async def test_affinity_and_soft_policies(
    api: ApiClient, two_hosts, policy: str, distinct: int
) -> None:
    image = await api.upload_image()
    group = await _group(api, policy, policy=policy)
    status, body = await _boot(api, image, "x", group["id"], min_count=3)
    assert status == 202, body
    _, shown, _ = await api.get(f"{GROUPS}/{group['id']}", version="2.64")
    assert len(shown["server_group"]["members"]) == 3
    hosts = set()
    for uuid in shown["server_group"]["members"]:
        server = await api.wait_server(uuid, "ACTIVE", "ERROR")
        assert server["status"] == "ACTIVE", server.get("fault")  # soft never fails
        hosts.add(server["OS-EXT-SRV-ATTR:host"])
    assert len(hosts) == distinct


# ---- the real CLI ---------------------------------------------------------------------------------


@pytest.mark.first_backend_only
async def test_openstack_cli_server_groups(controller: Controller, api: ApiClient) -> None:
    rc, out, err = await run_openstack(
        controller, "server", "group", "create", "--policy", "anti-affinity", "grp1", "-f", "json"
    )
    assert rc == 0, err
    created = json.loads(out)
    assert created["name"] == "grp1" and created["policy"] == "anti-affinity"
    rc, out, err = await run_openstack(controller, "server", "group", "list", "-f", "json")
    assert rc == 0, err
    assert [(g["ID"], g["Name"], g["Policy"]) for g in json.loads(out)] == [
        (created["id"], "grp1", "anti-affinity")
    ]
    rc, out, err = await run_openstack(controller, "server", "group", "show", "grp1", "-f", "json")
    assert rc == 0, err
    assert json.loads(out)["id"] == created["id"]

    image = await api.upload_image()
    rc, out, err = await run_openstack(
        controller,
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        "1",
        "--nic",
        "none",
        "--server-group",
        "grp1",
        "vm9",
        "-f",
        "json",
    )
    assert rc == 0, err
    server_id = json.loads(out)["id"]
    _, shown, _ = await api.get(f"{GROUPS}/{created['id']}", version="2.64")
    assert shown["server_group"]["members"] == [server_id]

    rc, out, err = await run_openstack(controller, "server", "group", "delete", "grp1")
    assert rc == 0, err
    rc, out, err = await run_openstack(controller, "server", "group", "list", "-f", "json")
    assert rc == 0 and json.loads(out) == []
