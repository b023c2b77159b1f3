"""Glance v2 subset under /image and the compute /images proxy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from mininova.controller import Controller
from mininova.image import store_ops
from tests.conftest import ApiClient
from tests.kit.wait import wait_for

IMAGES = "/image/v2/images"
OCTET = {"Content-Type": "application/octet-stream"}


async def _create(api: ApiClient, **body: object) -> dict:
    body.setdefault("name", "img")
    body.setdefault("disk_format", "raw")
    status, image, _ = await api.post(IMAGES, json=body)
    assert status == 201, image
    return image


async def _upload(api: ApiClient, image_id: str, data: bytes) -> int:
    status, body, _ = await api.put(f"{IMAGES}/{image_id}/file", data=data, headers=OCTET)
    assert body is None or status != 204, body
    return status


async def test_versions_document_is_public(api: ApiClient) -> None:
    for path in ("/image", "/image/"):
        status, body, _ = await api.get(path, token=False)
        assert status == 300
        first = body["versions"][0]
        assert first["status"] == "CURRENT" and first["id"].startswith("v2.")
        assert first["links"][0]["href"] == api.base + "/image/v2/"
    status, _, _ = await api.get(IMAGES, token=False)
    assert status == 401


async def test_image_lifecycle(
    api: ApiClient, member_api: ApiClient, controller: Controller
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    image = await _create(
        api,
        name="cirros",
        disk_format="raw",
        **{"owner_specified.openstack.md5": "", "hw_disk_bus": "virtio"},
    )
    assert image["status"] == "queued"
    assert image["visibility"] == "shared" and image["container_format"] == "bare"
    assert image["hw_disk_bus"] == "virtio" and image["owner_specified.openstack.md5"] == ""
    assert image["owner"] == api.project_id
    assert image["self"] == f"/v2/images/{image['id']}" and image["os_hidden"] is False
    assert image["created_at"].endswith("Z") and len(image["created_at"]) == 20
    iid = image["id"]

    assert await _upload(api, iid, data) == 204
    status, shown, _ = await api.get(f"{IMAGES}/{iid}")
    assert status == 200
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["virtual_size"] == len(data)  # raw: virtual size is the size
    path = store_ops.image_path(controller.config, iid)
    assert path.read_bytes() == data
    assert not list(path.parent.glob(".*.part"))
    row = await store_ops.get_image_row(controller.store, iid)
    assert row is not None and row["checksum"] == shown["checksum"]
    assert store_ops.image_file_url(controller.config, iid) == api.base + f"{IMAGES}/{iid}/file"

    # second upload → 409
    assert await _upload(api, iid, b"again") == 409

    # download, streamed back identically
    async with api.session.get(
        api.base + f"{IMAGES}/{iid}/file", headers={"X-Auth-Token": api.token}
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Content-MD5"] == shown["checksum"]
        got = bytearray()
        async for chunk in resp.content.iter_chunked(65536):
            got += chunk
    assert bytes(got) == data

    # filters
    other = await _create(api, name="other")
    status, body, _ = await api.get(IMAGES + "?name=cirros")
    assert [i["id"] for i in body["images"]] == [iid]
    status, body, _ = await api.get(IMAGES + "?status=queued")
    assert [i["id"] for i in body["images"]] == [other["id"]]
    status, body, _ = await api.get(IMAGES + f"?id=in:{iid},{other['id']}")
    assert {i["id"] for i in body["images"]} == {iid, other["id"]}
    status, body, _ = await api.get(IMAGES + "?hw_disk_bus=virtio")
    assert [i["id"] for i in body["images"]] == [iid]
    status, body, _ = await api.get(IMAGES)
    assert [i["id"] for i in body["images"]] == [other["id"], iid]  # created_at desc
    assert body["first"] == "/v2/images" and body["schema"] == "/v2/schemas/images"
    assert "next" not in body
    status, body, _ = await api.get(IMAGES + "?limit=1")
    assert [i["id"] for i in body["images"]] == [other["id"]]
    assert body["next"] == f"/v2/images?limit=1&marker={other['id']}"
    status, body, _ = await api.get(IMAGES + f"?limit=1&marker={other['id']}")
    assert [i["id"] for i in body["images"]] == [iid]
    for bad in ("limit=-1", "limit=x", "marker=00000000-0000-0000-0000-000000000000"):
        status, err, _ = await api.get(IMAGES + "?" + bad)
        assert status == 400, (bad, err)
        assert err["badRequest"]["code"] == 400

    # PATCH a property and the name
    patch = [
        {"op": "replace", "path": "/name", "value": "cirros2"},
        {"op": "add", "path": "/os_distro", "value": "cirros"},
        {"op": "remove", "path": "/hw_disk_bus"},
        {"op": "add", "path": "/tags", "value": ["a", "b"]},
    ]
    status, patched, _ = await api.patch(
        f"{IMAGES}/{iid}",
        data=json.dumps(patch),
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    assert status == 200, patched
    assert patched["name"] == "cirros2" and patched["os_distro"] == "cirros"
    assert "hw_disk_bus" not in patched and patched["tags"] == ["a", "b"]
    status, err, _ = await api.patch(
        f"{IMAGES}/{iid}",
        data=json.dumps([{"op": "replace", "path": "/size", "value": 1}]),
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
    )
    assert status == 403 and err["forbidden"]["code"] == 403

    # another project: cannot see the (shared, not public) image
    status, err, _ = await member_api.get(f"{IMAGES}/{iid}")
    assert status == 404 and err["itemNotFound"]["code"] == 404
    status, body, _ = await member_api.get(IMAGES)
    assert body["images"] == []
    status, _, _ = await member_api.get(f"{IMAGES}/{iid}/file")
    assert status == 404

    # compute proxy
    status, body, _ = await api.get("/compute/v2.1/images/detail")
    assert status == 200
    item = next(i for i in body["images"] if i["id"] == iid)
    assert item["status"] == "ACTIVE" and item["progress"] == 100
    assert item["metadata"]["os_distro"] == "cirros" and item["name"] == "cirros2"
    assert {link["rel"] for link in item["links"]} == {"self", "bookmark", "alternate"}
    status, body, _ = await api.get("/compute/v2.1/images")
    assert {"id", "name", "links"} == set(body["images"][0])
    status, body, _ = await api.get(f"/compute/v2.1/images/{other['id']}")
    assert body["image"]["status"] == "SAVING" and body["image"]["progress"] == 25
    status, body, _ = await api.get(f"/compute/v2.1/images/{iid}/metadata")
    assert body == {"metadata": {"os_distro": "cirros", "owner_specified.openstack.md5": ""}}
    status, _, _ = await api.get("/compute/v2.1/images", version="2.36")
    assert status == 404
    status, _, _ = await api.delete(f"/compute/v2.1/images/{other['id']}")
    assert status == 204

    # delete
    status, _, _ = await api.delete(f"{IMAGES}/{iid}")
    assert status == 204
    assert not path.exists()
    status, err, _ = await api.get(f"{IMAGES}/{iid}")
    assert status == 404 and "itemNotFound" in err


async def test_create_validation(api: ApiClient, member_api: ApiClient) -> None:
    status, err, _ = await api.post(
        IMAGES, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and err["badRequest"]["code"] == 400
    for body in (
        {"disk_format": "floppy"},
        {"name": "x", "size": 3},
        {"foo": 1},
        {"status": "active"},
        {"min_ram": -1},
        {"protected": "yes"},
        {"id": "not-a-uuid"},
        {"container_format": "zip"},
        {"tags": "a"},
    ):
        status, err, _ = await api.post(IMAGES, json=body)
        assert status == 400, (body, err)
    status, err, _ = await member_api.post(IMAGES, json={"name": "p", "visibility": "public"})
    assert status == 403 and err["forbidden"]["code"] == 403
    fixed = "6f1f6f1e-0000-4000-8000-000000000001"
    image = await _create(api, id=fixed, visibility="public", protected=True)
    assert image["id"] == fixed
    status, _, _ = await api.post(IMAGES, json={"id": fixed})
    assert status == 409
    # public images are visible to everyone; non-owners cannot change or delete them
    status, _, _ = await member_api.get(f"{IMAGES}/{fixed}")
    assert status == 200
    status, _, _ = await member_api.delete(f"{IMAGES}/{fixed}")
    assert status == 403
    status, err, _ = await api.delete(f"{IMAGES}/{fixed}")
    assert status == 403  # protected
    status, _, _ = await api.get(f"{IMAGES}/not-a-uuid")
    assert status == 404


async def test_upload_needs_queued_format_and_limit(api: ApiClient, controller: Controller) -> None:
    image = await _create(api, disk_format=None)
    assert await _upload(api, image["id"], b"x" * 10) == 400  # no disk_format yet
    image = await _create(api)
    controller.config.image_size_cap = 1000
    try:
        assert await _upload(api, image["id"], b"x" * 5000) == 413
    finally:
        controller.config.image_size_cap = 1099511627776
    status, shown, _ = await api.get(f"{IMAGES}/{image['id']}")
    assert shown["status"] == "queued"
    status, _, _ = await api.get(f"{IMAGES}/{image['id']}/file")
    assert status == 204
    assert await _upload(api, image["id"], b"y" * 5000) == 204


async def test_broken_upload_returns_to_queued(api: ApiClient, controller: Controller) -> None:
    image = await _create(api)
    host, port = controller.config.listen_host, controller.config.listen_port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"PUT {IMAGES}/{image['id']}/file HTTP/1.1\r\nHost: {host}\r\n"
        f"X-Auth-Token: {api.token}\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
    )
    writer.write(head.encode() + b"z" * (2 * 1024 * 1024))
    await writer.drain()

    def status_is(want: str):  # noqa: ANN202
        async def check() -> bool:
            _, shown, _ = await api.get(f"{IMAGES}/{image['id']}")
            return shown["status"] == want

        return check

    await wait_for(status_is("saving"), 2, 0.02, "the upload to start saving")
    writer.close()
    await wait_for(status_is("queued"), 4, 0.02, "the broken upload to return to queued")
    images_dir = store_ops.images_dir(controller.config)
    assert not list(images_dir.glob(".*.part"))
    assert not store_ops.image_path(controller.config, image["id"]).exists()
    assert await _upload(api, image["id"], b"ok") == 204


async def _openstack(controller: Controller, *args: str) -> tuple[int, str, str]:
    creds = controller.credentials
    assert creds is not None
    env = dict(
        os.environ,
        OS_AUTH_URL=controller.config.base_url + "/identity/v3",
        OS_USERNAME=creds.username,
        OS_PASSWORD=creds.password,
        OS_PROJECT_NAME=creds.project,
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
        OS_REGION_NAME="RegionOne",
        OS_IDENTITY_API_VERSION="3",
    )
    for key in ("OS_CLOUD", "OS_TOKEN", "OS_AUTH_TYPE"):
        env.pop(key, None)
    exe = str(Path(sys.executable).parent / "openstack")
    proc = await asyncio.create_subprocess_exec(
        exe, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


@pytest.mark.first_backend_only
async def test_openstack_cli_image_commands(controller: Controller, tmp_path: Path) -> None:
    data = os.urandom(3_000_000)
    src = tmp_path / "disk.qcow2"
    src.write_bytes(data)
    rc, out, err = await _openstack(
        controller,
        "image",
        "create",
        "--file",
        str(src),
        "--disk-format",
        "qcow2",
        "-f",
        "json",
        "cli-img",
    )
    assert rc == 0, err
    created = json.loads(out)
    assert created["name"] == "cli-img"
    rc, out, err = await _openstack(controller, "image", "list", "-f", "json")
    assert rc == 0, err
    listed = json.loads(out)
    assert [(i["Name"], i["Status"]) for i in listed] == [("cli-img", "active")]
    rc, out, err = await _openstack(controller, "image", "show", "cli-img", "-f", "json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["id"] == created["id"] and shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    rc, out, err = await _openstack(controller, "image", "delete", "cli-img")
    assert rc == 0, err
    rc, out, err = await _openstack(controller, "image", "list", "-f", "json")
    assert rc == 0 and json.loads(out) == []


async def test_qcow2_virtual_size_from_qemu_img(api: ApiClient, tmp_path: Path) -> None:
    qemu_img = shutil.which("qemu-img")
    if qemu_img is None:
        pytest.skip("qemu-img not installed")
    disk = tmp_path / "d.qcow2"
    proc = await asyncio.create_subprocess_exec(
        qemu_img, "create", "-q", "-f", "qcow2", str(disk), "1G"
    )
    assert await proc.wait() == 0
    image = await _create(api, disk_format="qcow2")
    assert await _upload(api, image["id"], disk.read_bytes()) == 204
    _, shown, _ = await api.get(f"{IMAGES}/{image['id']}")
    assert shown["virtual_size"] == 1024**3
    assert shown["size"] == disk.stat().st_size
