"""Measured differences from Nova, each fixed to Nova's behaviour (issue 11, item 7).

Every test here failed on the code before the fix, except the two server-create checks of
unknown networks and security groups, which the networking work had already made Nova's 400.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.agent.handlers import _tail
from mininova.controller import Controller
from mininova.virt.fake import FakeDriver
from tests.api.cli import run_openstack
from tests.conftest import ApiClient
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

C = "/compute/v2.1"
SERVERS = C + "/servers"
QUOTA_CLASS = C + "/os-quota-class-sets/default"


def _server(image: str, name: str = "vm", **extra: object) -> dict:
    return {
        "server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none", **extra}
    }


async def _count_servers(api: ApiClient) -> int:
    _, body, _ = await api.get(SERVERS + "?all_tenants=1")
    return len(body["servers"])


@pytest.fixture
async def host(api: ApiClient, controller: Controller, tmp_path: Path) -> AsyncIterator[FakeDriver]:
    """One fake-driver agent joined to the controller."""
    async with fake_agent(controller, tmp_path, api=api) as driver:
        yield driver


async def _boot_active(api: ApiClient, name: str = "vm") -> str:
    image = await api.upload_image()
    status, body, _ = await api.post(SERVERS, json=_server(image, name), version="2.100")
    assert status == 202, body
    server = await api.wait_server(body["server"]["id"], "ACTIVE", "ERROR")
    assert server["status"] == "ACTIVE", server.get("fault")
    return server["id"]


# ---- flavor create with a numeric id -----------------------------------------------------


@pytest.mark.parametrize("version", ["2.1", "2.100"])
async def test_flavor_create_with_integer_id(api: ApiClient, version: str) -> None:
    spec = {"name": f"int-{version}", "ram": 64, "vcpus": 1, "disk": 1, "id": 4242}
    status, body, _ = await api.post(C + "/flavors", json={"flavor": spec}, version=version)
    assert status == 200, body
    assert body["flavor"]["id"] == "4242"
    status, body, _ = await api.get(C + "/flavors/4242", version=version)
    assert status == 200 and body["flavor"]["id"] == "4242"
    # The same id again (now as the string) is the duplicate it is.
    spec = {**spec, "name": "again", "id": "4242"}
    status, _, _ = await api.post(C + "/flavors", json={"flavor": spec}, version=version)
    assert status == 409
    await api.delete(C + "/flavors/4242")


# ---- metadata over the metadata_items quota: 403 with Nova's message -----------------------


def _items(count: int, prefix: str = "k") -> dict[str, str]:
    return {f"{prefix}{i}": "v" for i in range(count)}


async def test_server_create_over_metadata_quota_is_403(api: ApiClient) -> None:
    image = await api.upload_image()
    before = await _count_servers(api)
    status, body, _ = await api.post(
        SERVERS, json=_server(image, metadata=_items(129)), version="2.100"
    )
    assert status == 403, body
    assert body["forbidden"]["message"] == "Maximum number of metadata items exceeds 128"
    assert await _count_servers(api) == before
    status, body, _ = await api.post(
        SERVERS, json=_server(image, metadata=_items(128)), version="2.100"
    )
    assert status == 202, body


async def test_server_metadata_over_quota_is_403(api: ApiClient) -> None:
    image = await api.upload_image()
    status, body, _ = await api.post(
        SERVERS, json=_server(image, metadata=_items(127)), version="2.100"
    )
    assert status == 202, body
    meta = f"{SERVERS}/{body['server']['id']}/metadata"
    expected = "Maximum number of metadata items exceeds 128"

    status, body, _ = await api.post(meta, json={"metadata": _items(2, "new")})
    assert status == 403 and body["forbidden"]["message"] == expected
    status, body, _ = await api.put(meta, json={"metadata": _items(129)})
    assert status == 403 and body["forbidden"]["message"] == expected
    status, body, _ = await api.put(meta + "/extra", json={"meta": {"extra": "1"}})
    assert status == 200, body  # the 128th item fits
    status, body, _ = await api.put(meta + "/more", json={"meta": {"more": "1"}})
    assert status == 403 and body["forbidden"]["message"] == expected
    _, body, _ = await api.get(meta)
    assert len(body["metadata"]) == 128

    # The project's own metadata_items limit counts; deleting stays possible over it.
    status, _, _ = await api.put(
        f"{C}/os-quota-sets/{api.project_id}", json={"quota_set": {"metadata_items": 2}}
    )
    assert status == 200
    status, body, _ = await api.put(meta, json={"metadata": _items(3)})
    assert status == 403
    assert body["forbidden"]["message"] == "Maximum number of metadata items exceeds 2"
    status, _, _ = await api.delete(meta + "/k0")
    assert status == 204
    status, body, _ = await api.put(meta, json={"metadata": _items(2)})
    assert status == 200 and body["metadata"] == _items(2)


async def test_image_metadata_over_quota_is_403(api: ApiClient) -> None:
    image = await api.upload_image()
    meta = f"{C}/images/{image}/metadata"
    status, body, _ = await api.post(meta, json={"metadata": _items(129)}, version="2.1")
    assert status == 403, body
    assert body["forbidden"]["message"] == "Image metadata limit exceeded"
    status, body, _ = await api.put(meta, json={"metadata": _items(129)}, version="2.1")
    assert status == 403 and body["forbidden"]["message"] == "Image metadata limit exceeded"
    status, body, _ = await api.post(meta, json={"metadata": _items(3)}, version="2.1")
    assert status == 200, body
    assert _items(3).items() <= body["metadata"].items()


# ---- os-getConsoleOutput length: exactly N lines ------------------------------------------


def test_tail_keeps_exactly_the_last_lines() -> None:
    log = "one\ntwo\nthree\nfour\n"
    assert _tail(log, 2) == "three\nfour"
    assert _tail(log, 2).split("\n") == ["three", "four"]
    assert _tail(log, 1) == "four"
    assert _tail(log, 0) == ""
    assert _tail(log, 10) == "one\ntwo\nthree\nfour"
    assert _tail(log, None) == log
    # A final partial line (a login prompt) is the last of the N lines.
    assert _tail("a\nb\nlogin: ", 2) == "b\nlogin: "
    # Serial consoles end lines in \r\n: still one line each.
    assert _tail("a\r\nb\r\nc\r\n", 2).split("\n") == ["b\r", "c\r"]


async def test_console_output_length_through_the_api(api: ApiClient, host: FakeDriver) -> None:
    uuid = await _boot_active(api)
    action = f"{SERVERS}/{uuid}/action"
    status, body, _ = await api.post(action, json={"os-getConsoleOutput": {}}, version="2.100")
    assert status == 200
    full = body["output"].splitlines()
    assert len(full) > 3
    # OSC sends an int, novaclient a string; tempest counts output.split("\n").
    for length in (3, "3"):
        status, body, _ = await api.post(
            action, json={"os-getConsoleOutput": {"length": length}}, version="2.1"
        )
        assert status == 200, body
        assert body["output"].split("\n") == full[-3:]


# ---- server create with unknown networks or security groups: 400 ---------------------------


async def test_create_with_unknown_network_is_400(api: ApiClient) -> None:
    image = await api.upload_image()
    before = await _count_servers(api)
    unknown = "3f0b2b6c-2f4e-4a53-9a4b-1d1f1f1f1f1f"
    status, body, _ = await api.post(
        SERVERS, json=_server(image, networks=[{"uuid": unknown}]), version="2.100"
    )
    assert status == 400, body
    assert unknown in body["badRequest"]["message"]
    assert await _count_servers(api) == before


async def test_create_with_unknown_security_group_is_400(api: ApiClient) -> None:
    image = await api.upload_image()
    before = await _count_servers(api)
    status, body, _ = await api.post(
        SERVERS,
        json=_server(image, security_groups=[{"name": "no-such-group"}]),
        version="2.100",
    )
    assert status == 400, body
    assert "no-such-group" in body["badRequest"]["message"]
    assert await _count_servers(api) == before


# ---- os-quota-class-sets ------------------------------------------------------------------


async def test_quota_class_default_show_and_update(api: ApiClient, member_api: ApiClient) -> None:
    status, body, _ = await api.get(QUOTA_CLASS, version="2.1")
    assert status == 200, body
    shown = body["quota_class_set"]
    assert shown["id"] == "default" and shown["instances"] == 10 and shown["cores"] == 20
    assert "floating_ips" in shown and "server_groups" not in shown
    status, body, _ = await api.get(QUOTA_CLASS, version="2.50")
    assert "server_groups" in body["quota_class_set"]
    assert "floating_ips" not in body["quota_class_set"]
    assert "injected_files" in body["quota_class_set"]
    status, body, _ = await api.get(QUOTA_CLASS, version="2.57")
    assert "injected_files" not in body["quota_class_set"]

    status, body, _ = await member_api.put(
        QUOTA_CLASS, json={"quota_class_set": {"instances": 1}}, version="2.57"
    )
    assert status == 403, body
    status, body, _ = await api.put(
        QUOTA_CLASS, json={"quota_class_set": {"instances": "x"}}, version="2.57"
    )
    assert status == 400, body
    status, body, _ = await api.put(
        QUOTA_CLASS, json={"quota_class_set": {"floating_ips": 1}}, version="2.57"
    )
    assert status == 400, body  # not a key at 2.50+

    status, body, _ = await api.put(
        QUOTA_CLASS, json={"quota_class_set": {"instances": 0, "cores": 30}}, version="2.57"
    )
    assert status == 200, body
    updated = body["quota_class_set"]
    assert "id" not in updated
    assert updated["instances"] == 0 and updated["cores"] == 30 and updated["ram"] == 51200
    status, body, _ = await api.get(QUOTA_CLASS, version="2.57")
    assert body["quota_class_set"]["instances"] == 0

    # The default class is every project's default: a project without overrides gets it.
    status, body, _ = await member_api.get(f"{C}/os-quota-sets/{member_api.project_id}")
    assert body["quota_set"]["instances"] == 0 and body["quota_set"]["cores"] == 30
    status, body, _ = await member_api.get(f"{C}/os-quota-sets/{member_api.project_id}/defaults")
    assert body["quota_set"]["instances"] == 0
    image = await member_api.upload_image()
    status, body, _ = await member_api.post(SERVERS, json=_server(image), version="2.100")
    assert status == 403, body
    assert "Quota exceeded for instances" in body["forbidden"]["message"]


# ---- /extensions --------------------------------------------------------------------------


async def test_extensions_list_what_clients_look_for(api: ApiClient) -> None:
    status, body, _ = await api.get(C + "/extensions")
    assert status == 200
    by_alias = {ext["alias"]: ext for ext in body["extensions"]}
    assert by_alias["os-consoles"] == {
        "alias": "os-consoles",
        "name": "Consoles",
        "description": "Interactive Console support.",
        "namespace": "http://docs.openstack.org/compute/ext/fake_xml",
        "updated": "2014-12-03T00:00:00Z",
        "links": [],
    }
    assert by_alias["os-hosts"]["name"] == "Hosts"
    assert by_alias["os-hosts"]["description"] == "Admin-only host administration."
    for alias in ("os-server-password", "os-quota-class-sets", "os-instance-actions"):
        assert alias in by_alias
    aliases = [ext["alias"] for ext in body["extensions"]]
    assert aliases == sorted(aliases)
    status, body, _ = await api.get(C + "/extensions/os-hosts")
    assert status == 200 and body["extension"]["name"] == "Hosts"


# ---- injectNetworkInfo --------------------------------------------------------------------


async def test_inject_network_info(api: ApiClient, member_api: ApiClient, host: FakeDriver) -> None:
    uuid = await _boot_active(api)
    action = f"{SERVERS}/{uuid}/action"
    _, before, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions")
    syncs = host.network_syncs

    status, body, _ = await api.post(action, json={"injectNetworkInfo": None})
    assert (status, body) == (202, None)
    # The host gets its network state again (what the server's network info comes from).
    await wait_for(
        lambda: host.network_syncs > syncs, 5, 0.02, "the host's network state to be pushed"
    )
    assert host.network_state is not None
    # Nova records no instance action for it.
    _, after, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions")
    assert after == before
    status, body, _ = await api.get(f"{SERVERS}/{uuid}")
    assert body["server"]["status"] == "ACTIVE"

    # Admin only: the owner's project member is refused; another project sees no server.
    image = await member_api.upload_image()
    status, created, _ = await member_api.post(SERVERS, json=_server(image, "m"), version="2.100")
    assert status == 202
    own = f"{SERVERS}/{created['server']['id']}/action"
    status, body, _ = await member_api.post(own, json={"injectNetworkInfo": None})
    assert status == 403, body
    status, _, _ = await member_api.post(action, json={"injectNetworkInfo": None})
    assert status == 404


@pytest.mark.first_backend_only
async def test_quota_set_default_with_the_openstack_cli(
    api: ApiClient, controller: Controller
) -> None:
    """`openstack quota set --default` sends PUT /os-quota-class-sets/default (SDK)."""
    rc, out, err = await run_openstack(
        controller, "quota", "set", "--default", "--instances", "7", "--cores", "11"
    )
    assert rc == 0, err
    rc, out, err = await run_openstack(controller, "quota", "show", "--default", "-f", "json")
    assert rc == 0, err
    shown = {row["Resource"]: row["Limit"] for row in json.loads(out)}
    assert shown["instances"] == 7 and shown["cores"] == 11
    _, body, _ = await api.get(QUOTA_CLASS, version="2.57")
    assert body["quota_class_set"]["instances"] == 7
