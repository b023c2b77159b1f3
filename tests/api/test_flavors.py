"""Flavors: views per microversion, filters, create/delete, access, extra specs, OSC."""

from __future__ import annotations

import json

import pytest

from mininova.controller import Controller
from tests.api.cli import run_openstack
from tests.conftest import ApiClient

F = "/compute/v2.1/flavors"

DETAIL_21 = {
    "id",
    "name",
    "links",
    "ram",
    "vcpus",
    "swap",
    "disk",
    "OS-FLV-EXT-DATA:ephemeral",
    "OS-FLV-DISABLED:disabled",
    "os-flavor-access:is_public",
    "rxtx_factor",
}


async def _create(api: ApiClient, name: str, **extra: object) -> dict:
    body = {"flavor": {"name": name, "ram": 128, "vcpus": 1, "disk": 1, **extra}}
    status, resp, _ = await api.post(F, json=body)
    assert status == 200, resp
    return resp["flavor"]


async def test_list_brief_and_detail_at_2_1(api: ApiClient) -> None:
    status, body, _ = await api.get(F)
    assert status == 200
    names = [f["name"] for f in body["flavors"]]
    assert names == ["m1.nano", "m1.micro", "m1.tiny", "m1.small", "m1.medium"]
    assert all(set(f) == {"id", "name", "links"} for f in body["flavors"])
    status, body, _ = await api.get(F + "/detail")
    assert status == 200
    nano = body["flavors"][0]
    assert set(nano) == DETAIL_21
    assert nano["id"] == "1" and nano["ram"] == 64 and nano["swap"] == ""
    assert nano["links"][0]["rel"] == "self"
    assert nano["links"][0]["href"].endswith("/compute/v2.1/flavors/1")


async def test_microversion_key_sets(api: ApiClient) -> None:
    _, body, _ = await api.get(F, version="2.55")
    assert set(body["flavors"][0]) == {"id", "name", "links", "description"}
    _, body, _ = await api.get(F + "/1", version="2.54")
    assert set(body["flavor"]) == DETAIL_21
    _, body, _ = await api.get(F + "/1", version="2.55")
    assert set(body["flavor"]) == DETAIL_21 | {"description"}
    _, body, _ = await api.get(F + "/1", version="2.61")
    assert set(body["flavor"]) == DETAIL_21 | {"description", "extra_specs"}
    assert body["flavor"]["extra_specs"] == {} and body["flavor"]["swap"] == ""
    _, body, _ = await api.get(F + "/1", version="2.75")
    assert body["flavor"]["swap"] == 0


async def test_filters_sort_and_pagination(api: ApiClient) -> None:
    _, body, _ = await api.get(F + "?minRam=512&minDisk=20")
    assert [f["name"] for f in body["flavors"]] == ["m1.small", "m1.medium"]
    _, body, _ = await api.get(F + "?limit=2")
    assert [f["id"] for f in body["flavors"]] == ["1", "2"]
    assert "marker=2" in body["flavors_links"][0]["href"]
    _, body, _ = await api.get(F + "?limit=2&marker=2")
    assert [f["id"] for f in body["flavors"]] == ["3", "4"]
    _, body, _ = await api.get(F + "?sort_key=memory_mb&sort_dir=desc")
    assert body["flavors"][0]["name"] == "m1.medium"
    for bad in ("minRam=x", "limit=-1", "marker=nope", "sort_key=bogus", "is_public=maybe"):
        status, err, _ = await api.get(F + "?" + bad)
        assert status == 400, (bad, err)
        assert err["badRequest"]["code"] == 400


async def test_create_show_delete(api: ApiClient) -> None:
    status, body, _ = await api.post(
        F,
        json={
            "flavor": {
                "name": "t1",
                "ram": 256,
                "vcpus": 2,
                "disk": 3,
                "id": None,
                "swap": 0,
                "OS-FLV-EXT-DATA:ephemeral": 1,
                "os-flavor-access:is_public": True,
            }
        },
        version="2.61",
    )
    assert status == 200, body
    flavor = body["flavor"]
    assert len(flavor["id"]) == 36
    assert flavor["vcpus"] == 2 and flavor["OS-FLV-EXT-DATA:ephemeral"] == 1
    assert flavor["extra_specs"] == {} and flavor["description"] is None
    status, shown, _ = await api.get(f"{F}/{flavor['id']}", version="2.61")
    assert status == 200 and shown["flavor"] == flavor
    status, err, _ = await api.post(
        F, json={"flavor": {"name": "t1", "ram": 1, "vcpus": 1, "disk": 0}}
    )
    assert status == 409 and "conflictingRequest" in err
    status, err, _ = await api.post(
        F, json={"flavor": {"name": "t2", "ram": 1, "vcpus": 1, "disk": 0, "id": "1"}}
    )
    assert status == 409
    status, body, _ = await api.delete(f"{F}/{flavor['id']}")
    assert status == 202 and body is None
    status, err, _ = await api.get(f"{F}/{flavor['id']}")
    assert status == 404 and err["itemNotFound"]["code"] == 404
    status, _, _ = await api.delete(f"{F}/{flavor['id']}")
    assert status == 404


async def test_create_validation(api: ApiClient) -> None:
    base = {"name": "v1", "ram": 128, "vcpus": 1, "disk": 1}
    for bad in (
        {"ram": 0},
        {"vcpus": 0},
        {"disk": -1},
        {"ram": "abc"},
        {"name": ""},
        {"name": "x" * 256},
        {"name": " lead"},
        {"id": "bad/id"},
        {"bogus": 1},
        {"description": "d"},
    ):
        status, err, _ = await api.post(F, json={"flavor": {**base, **bad}})
        assert status == 400, (bad, err)
    status, err, _ = await api.post(F, json={"flavor": {"name": "v1", "ram": 1}})
    assert status == 400, err
    # string numbers are accepted as Nova does; description from 2.55
    status, body, _ = await api.post(
        F,
        json={"flavor": {**base, "ram": "64", "id": "custom-1", "description": "hello"}},
        version="2.55",
    )
    assert status == 200, body
    assert body["flavor"]["ram"] == 64 and body["flavor"]["id"] == "custom-1"
    assert body["flavor"]["description"] == "hello"
    status, body, _ = await api.put(
        F + "/custom-1", json={"flavor": {"description": "new"}}, version="2.55"
    )
    assert status == 200 and body["flavor"]["description"] == "new"
    status, _, _ = await api.put(F + "/custom-1", json={"flavor": {"description": "x"}})
    assert status == 404


async def test_member_cannot_manage_flavors(api: ApiClient, member_api: ApiClient) -> None:
    status, err, _ = await member_api.post(
        F, json={"flavor": {"name": "m", "ram": 64, "vcpus": 1, "disk": 1}}
    )
    assert status == 403 and err["forbidden"]["code"] == 403
    status, _, _ = await member_api.delete(F + "/1")
    assert status == 403
    status, _, _ = await member_api.post(F + "/1/os-extra_specs", json={"extra_specs": {"a": "b"}})
    assert status == 403
    status, body, _ = await member_api.get(F + "/detail?is_public=None")
    assert status == 200 and len(body["flavors"]) == 5


async def test_private_flavor_access(api: ApiClient, member_api: ApiClient) -> None:
    flavor = await _create(api, "private1", **{"os-flavor-access:is_public": False})
    fid = flavor["id"]
    assert flavor["os-flavor-access:is_public"] is False
    status, _, _ = await member_api.get(f"{F}/{fid}")
    assert status == 404
    _, body, _ = await member_api.get(F + "?is_public=None")
    assert fid not in [f["id"] for f in body["flavors"]]
    # admin listing
    _, body, _ = await api.get(F)
    assert fid not in [f["id"] for f in body["flavors"]]
    _, body, _ = await api.get(F + "?is_public=None")
    assert fid in [f["id"] for f in body["flavors"]]
    _, body, _ = await api.get(F + "?is_public=false")
    assert [f["id"] for f in body["flavors"]] == [fid]
    # grant access
    status, body, _ = await api.post(
        f"{F}/{fid}/action", json={"addTenantAccess": {"tenant": member_api.project_id}}
    )
    assert status == 200
    assert body == {"flavor_access": [{"flavor_id": fid, "tenant_id": member_api.project_id}]}
    status, _, _ = await api.post(
        f"{F}/{fid}/action", json={"addTenantAccess": {"tenant": member_api.project_id}}
    )
    assert status == 409
    status, body, _ = await api.get(f"{F}/{fid}/os-flavor-access")
    assert status == 200 and len(body["flavor_access"]) == 1
    status, _, _ = await member_api.get(f"{F}/{fid}")
    assert status == 200
    _, body, _ = await member_api.get(F)
    assert fid in [f["id"] for f in body["flavors"]]
    status, _, _ = await member_api.post(
        f"{F}/{fid}/action", json={"removeTenantAccess": {"tenant": member_api.project_id}}
    )
    assert status == 403
    status, body, _ = await api.post(
        f"{F}/{fid}/action", json={"removeTenantAccess": {"tenant": member_api.project_id}}
    )
    assert status == 200 and body == {"flavor_access": []}
    status, _, _ = await api.post(
        f"{F}/{fid}/action", json={"removeTenantAccess": {"tenant": member_api.project_id}}
    )
    assert status == 404
    status, _, _ = await member_api.get(f"{F}/{fid}")
    assert status == 404
    # public flavors have no access list and refuse grants
    status, _, _ = await api.get(F + "/1/os-flavor-access")
    assert status == 404
    status, _, _ = await api.post(F + "/1/action", json={"addTenantAccess": {"tenant": "x"}})
    assert status == 409
    status, _, _ = await api.post(F + "/1/action", json={"bogus": {}})
    assert status == 400


async def test_extra_specs(api: ApiClient, member_api: ApiClient) -> None:
    base = F + "/2/os-extra_specs"
    status, body, _ = await api.get(base)
    assert status == 200 and body == {"extra_specs": {}}
    status, body, _ = await api.post(
        base, json={"extra_specs": {"hw:cpu_policy": "shared", "quota:cpu_shares": 10, "x": True}}
    )
    assert status == 200
    assert body == {
        "extra_specs": {"hw:cpu_policy": "shared", "quota:cpu_shares": "10", "x": "True"}
    }
    status, body, _ = await member_api.get(base + "/hw:cpu_policy")
    assert status == 200 and body == {"hw:cpu_policy": "shared"}
    status, body, _ = await api.put(base + "/hw:cpu_policy", json={"hw:cpu_policy": "dedicated"})
    assert status == 200 and body == {"hw:cpu_policy": "dedicated"}
    status, _, _ = await api.put(base + "/hw:cpu_policy", json={"other": "v"})
    assert status == 400
    status, _, _ = await api.put(base + "/a", json={"a": "1", "b": "2"})
    assert status == 400
    status, _, _ = await api.post(base, json={"extra_specs": {"bad/key": "v"}})
    assert status == 400
    _, body, _ = await api.get(F + "/2", version="2.61")
    assert body["flavor"]["extra_specs"]["hw:cpu_policy"] == "dedicated"
    status, body, _ = await api.delete(base + "/x")
    assert status == 200
    status, _, _ = await api.get(base + "/x")
    assert status == 404
    status, _, _ = await api.delete(base + "/x")
    assert status == 404
    status, _, _ = await api.get(F + "/nope/os-extra_specs")
    assert status == 404


@pytest.mark.first_backend_only
async def test_openstack_cli_flavors(controller: Controller, api: ApiClient) -> None:
    rc, out, err = await run_openstack(controller, "flavor", "list", "-f", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert {r["Name"] for r in rows} >= {"m1.nano", "m1.medium"}
    nano = next(r for r in rows if r["Name"] == "m1.nano")
    assert nano["RAM"] == 64 and nano["Is Public"] is True

    rc, out, err = await run_openstack(controller, "flavor", "show", "m1.nano", "-f", "json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["id"] == "1" and shown["ram"] == 64 and shown["vcpus"] == 1

    rc, out, err = await run_openstack(
        controller,
        "flavor",
        "create",
        "--ram",
        "128",
        "--vcpus",
        "1",
        "--disk",
        "1",
        "t1",
        "-f",
        "json",
    )
    assert rc == 0, err
    created = json.loads(out)
    assert created["name"] == "t1" and created["ram"] == 128
    status, body, _ = await api.get(f"{F}/{created['id']}")
    assert status == 200 and body["flavor"]["name"] == "t1"

    rc, out, err = await run_openstack(controller, "flavor", "delete", "t1")
    assert rc == 0, err
    status, _, _ = await api.get(f"{F}/{created['id']}")
    assert status == 404
