"""Servers API without an agent: validation errors, isolation, microversioned views."""

from __future__ import annotations

import pytest

from tests.conftest import ApiClient

SERVERS = "/compute/v2.1/servers"


async def _count_instances(api: ApiClient) -> int:
    status, body, _ = await api.get(SERVERS + "?all_tenants=1")
    assert status == 200
    return len(body["servers"])


def _body(image: str, **server: object) -> dict:
    base = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "auto"}
    base.update(server)
    return {"server": base}


@pytest.mark.parametrize(
    "change",
    [
        {"name": ""},
        {"name": 42},
        {"name": "x" * 256},
        {"name": " leading-space"},
        {"flavorRef": "no-such-flavor"},
        {"imageRef": "not-a-uuid"},
        {"imageRef": "4b0e0f0a-0000-4000-8000-000000000000"},
        {"key_name": "no-such-key"},
        {"metadata": {"": "empty key"}},
        {"metadata": {"k" * 256: "v"}},
        {"min_count": 0},
        {"min_count": "two"},
        {"min_count": 3, "max_count": 2},
        {"accessIPv4": "300.1.1.1"},
        {"networks": "everything"},
        {"unknown_field": 1},
    ],
)
async def test_bad_create_is_400_and_leaves_nothing(api: ApiClient, change: dict) -> None:
    image = await api.upload_image()
    before = await _count_instances(api)
    status, body, resp = await api.post(SERVERS, json=_body(image, **change), version="2.100")
    assert status == 400, body
    assert body["badRequest"]["code"] == 400
    assert body["badRequest"]["message"]
    assert resp.headers["Content-Type"].startswith("application/json")
    assert await _count_instances(api) == before


async def test_malformed_json_is_400(api: ApiClient) -> None:
    status, body, _ = await api.post(
        SERVERS, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert "badRequest" in body


async def test_unknown_server_is_404_and_bad_version_406(api: ApiClient) -> None:
    status, body, _ = await api.get(f"{SERVERS}/does-not-exist")
    assert status == 404 and body["itemNotFound"]["code"] == 404
    status, body, _ = await api.get(SERVERS, version="2.999")
    assert status == 406


async def test_no_compute_host_ends_in_error_with_fault(api: ApiClient) -> None:
    image = await api.upload_image()
    status, body, resp = await api.post(SERVERS, json=_body(image), version="2.100")
    assert status == 202
    assert resp.headers["x-compute-request-id"].startswith("req-")
    server = await api.wait_server(body["server"]["id"], "ERROR")
    assert "No valid host" in server["fault"]["message"]


async def test_other_projects_server_is_404(api: ApiClient, member_api: ApiClient) -> None:
    image = await api.upload_image()
    _, body, _ = await api.post(SERVERS, json=_body(image))
    uuid = body["server"]["id"]
    status, err, _ = await member_api.get(f"{SERVERS}/{uuid}")
    assert status == 404 and "itemNotFound" in err
    status, _, _ = await member_api.delete(f"{SERVERS}/{uuid}")
    assert status == 404
    status, err, _ = await member_api.get("/compute/v2.1/os-hypervisors")
    assert status == 403 and err["forbidden"]["code"] == 403


async def test_view_keys_follow_microversion(api: ApiClient) -> None:
    image = await api.upload_image()
    _, body, _ = await api.post(SERVERS, json=_body(image))
    uuid = body["server"]["id"]
    await api.wait_server(uuid, "ERROR")
    _, v21, _ = await api.get(f"{SERVERS}/{uuid}")
    keys = set(v21["server"])
    assert {
        "id",
        "name",
        "status",
        "image",
        "flavor",
        "user_id",
        "tenant_id",
        "created",
        "updated",
        "metadata",
        "links",
        "addresses",
        "hostId",
    } <= keys
    assert not keys & {"locked", "description", "tags", "server_groups", "host_status"}
    assert set(v21["server"]["flavor"]) == {"id", "links"}
    _, v2100, _ = await api.get(f"{SERVERS}/{uuid}", version="2.100")
    s = v2100["server"]
    assert {
        "locked",
        "description",
        "tags",
        "server_groups",
        "pinned_availability_zone",
        "scheduler_hints",
        "locked_reason",
        "host_status",
    } <= set(s)
    assert set(s["flavor"]) == {
        "vcpus",
        "ram",
        "disk",
        "ephemeral",
        "swap",
        "original_name",
        "extra_specs",
    }
    _, detail, _ = await api.get(f"{SERVERS}/detail", version="2.100")
    assert "server_groups" not in detail["servers"][0]


async def test_list_filters(api: ApiClient) -> None:
    image = await api.upload_image()
    for name in ("web-1", "web-2", "db-1"):
        status, _, _ = await api.post(SERVERS, json=_body(image, name=name))
        assert status == 202
    _, body, _ = await api.get(SERVERS + "?name=^web")
    assert sorted(s["name"] for s in body["servers"]) == ["web-1", "web-2"]
    _, body, _ = await api.get(SERVERS + "?status=NOSUCH")
    assert body["servers"] == []
    _, body, _ = await api.get(SERVERS + "?limit=0")
    assert body["servers"] == []
    status, _, _ = await api.get(SERVERS + "?limit=-1")
    assert status == 400
    status, _, _ = await api.get(SERVERS + "?changes-since=yesterday")
    assert status == 400
    _, body, _ = await api.get(SERVERS + "?flavor=999")
    assert body["servers"] == []


async def test_metadata_routes(api: ApiClient) -> None:
    image = await api.upload_image()
    _, body, _ = await api.post(SERVERS, json=_body(image, metadata={"a": "1"}))
    uuid = body["server"]["id"]
    meta = f"{SERVERS}/{uuid}/metadata"
    _, body, _ = await api.post(meta, json={"metadata": {"b": "2"}})
    assert body["metadata"] == {"a": "1", "b": "2"}
    _, body, _ = await api.put(meta, json={"metadata": {"c": "3"}})
    assert body["metadata"] == {"c": "3"}
    status, _, _ = await api.put(meta + "/c", json={"meta": {"d": "4"}})
    assert status == 400
    status, body, _ = await api.put(meta + "/c", json={"meta": {"c": "5"}})
    assert status == 200 and body["meta"] == {"c": "5"}
    status, _, _ = await api.delete(meta + "/c")
    assert status == 204
    _, body, _ = await api.get(meta)
    assert body["metadata"] == {}
