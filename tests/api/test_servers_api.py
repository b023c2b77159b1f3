"""Servers API without an agent: validation errors, isolation, microversioned views."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from mininova.controller import Controller
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


async def test_all_tenants_is_admin_only(api: ApiClient, member_api: ApiClient) -> None:
    """Nova's policy: a member asking for every project's servers gets 403, not their own."""
    for path, rule in ((SERVERS, "index"), (SERVERS + "/detail", "detail")):
        status, err, _ = await member_api.get(path + "?all_tenants=1")
        assert status == 403, err
        assert f"os_compute_api:servers:{rule}:get_all_tenants" in err["forbidden"]["message"]
        status, _, _ = await member_api.get(path + "?all_tenants=0")
        assert status == 200
    status, _, _ = await api.get(SERVERS + "/detail?all_tenants")
    assert status == 200


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


async def test_parallel_creates_respect_the_instance_quota(
    api: ApiClient, member_api: ApiClient
) -> None:
    """The quota check and the inserts share one transaction under the project's quota
    lock: 20 concurrent creates against `instances` = 5 admit exactly 5."""
    qs = f"/compute/v2.1/os-quota-sets/{member_api.project_id}"
    status, _, _ = await api.put(qs, json={"quota_set": {"instances": 5}})
    assert status == 200
    image = await member_api.upload_image()
    results = await asyncio.gather(
        *(
            member_api.post(SERVERS, json=_body(image, name=f"race-{i}"), version="2.100")
            for i in range(20)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [202] * 5 + [403] * 15, statuses
    messages = {body["forbidden"]["message"] for status, body, _ in results if status == 403}
    assert messages == {
        "Quota exceeded for instances: Requested 1, but already used 5 of 5 instances"
    }
    _, body, _ = await member_api.get(SERVERS)
    assert len(body["servers"]) == 5
    _, body, _ = await member_api.get(qs + "/detail")
    assert body["quota_set"]["instances"]["in_use"] == 5


async def test_next_link_is_url_encoded(api: ApiClient) -> None:
    image = await api.upload_image()
    for name in ("a & b 1", "a & b 2", "other"):
        status, _, _ = await api.post(SERVERS, json=_body(image, name=name))
        assert status == 202
    query = urlencode({"name": "a & b", "limit": "1", "sort_dir": "asc"}, quote_via=quote)
    _, body, _ = await api.get(f"{SERVERS}/detail?{query}")
    assert [s["name"] for s in body["servers"]] == ["a & b 1"]
    href = body["servers_links"][0]["href"]
    assert " " not in href and "name=a%20%26%20b" in href
    params = parse_qs(urlsplit(href).query)
    assert params["name"] == ["a & b"] and params["marker"] == [body["servers"][0]["id"]]
    _, body, _ = await api.get(href[len(api.base) :])
    assert [s["name"] for s in body["servers"]] == ["a & b 2"]


async def test_detail_list_is_one_query_whatever_the_page_size(
    controller: Controller, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /servers/detail reads its rows (with image properties and host state) in one
    statement: the count of statements does not grow with the number of servers."""
    store = controller.store
    assert store is not None
    image = await api.upload_image()
    statements: list[str] = []
    run = store._backend.run_alone

    async def counting(sql: str, args: Any, *, want_rows: bool) -> Any:
        statements.append(sql)
        return await run(sql, args, want_rows=want_rows)

    async def count_detail() -> int:
        await controller.bus.drain()
        statements.clear()
        monkeypatch.setattr(store._backend, "run_alone", counting)
        try:
            status, body, _ = await api.get(f"{SERVERS}/detail", version="2.100")
        finally:
            monkeypatch.setattr(store._backend, "run_alone", run)
        assert status == 200
        return len([s for s in statements if "instances" in s])

    status, body, _ = await api.post(SERVERS, json=_body(image))
    assert status == 202
    await api.wait_server(body["server"]["id"], "ERROR")
    one = await count_detail()
    status, _, _ = await api.post(SERVERS, json=_body(image, min_count=4, max_count=4))
    assert status == 202
    four = await count_detail()
    assert one == four == 1, statements
