"""Images a tenant cannot abuse: virtual sizes, Glance's size cap and per-project image quotas.

In-process (the `controller`/`api`/`member_api` fixtures): a crafted qcow2 header claiming
100 TiB is shown with that `virtual_size` and refused on m1.nano with Nova's message; uploads
stop at `image_size_cap` and leave nothing behind; `image_count_total`, `image_size_total`
and `image_count_uploading` answer 413 as Glance does, and snapshots count too.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from mininova.controller import Controller
from mininova.image import store_ops
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.kit.wait import wait_for

IMAGES = "/image/v2/images"
SERVERS = "/compute/v2.1/servers"
OCTET = {"Content-Type": "application/octet-stream"}
TiB = 1024**4
GiB = 1024**3


def crafted_qcow2(virtual_size: int, length: int = 200 * 1024) -> bytes:
    """A qcow2 v3 header (64 KiB clusters) claiming `virtual_size`, padded to `length`."""
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        3,  # version
        0,  # backing file offset
        0,  # backing file size
        16,  # cluster bits
        virtual_size,
        0,  # no encryption
        1,  # L1 size
        3 * 65536,  # L1 table offset
        65536,  # refcount table offset
        1,  # refcount table clusters
        0,  # snapshots
        0,
    )
    return header + b"\0" * (length - len(header))


async def _image(api: ApiClient, disk_format: str = "raw", **body: object) -> dict:
    status, image, _ = await api.post(
        IMAGES, json={"name": "img", "disk_format": disk_format, "container_format": "bare", **body}
    )
    assert status == 201, image
    return image


async def _put(api: ApiClient, image_id: str, data: bytes) -> tuple[int, object]:
    status, body, _ = await api.put(f"{IMAGES}/{image_id}/file", data=data, headers=OCTET)
    return status, body


def _message(body: object) -> str:
    assert isinstance(body, dict) and len(body) == 1, body
    return str(next(iter(body.values()))["message"])


def _leftovers(controller: Controller) -> list[Path]:
    directory = store_ops.images_dir(controller.config)
    return sorted(directory.iterdir()) if directory.is_dir() else []


async def _status(api: ApiClient, image_id: str) -> str:
    _, shown, _ = await api.get(f"{IMAGES}/{image_id}")
    return str(shown["status"])


class _ChunkedUpload:
    """A `PUT …/file` with a chunked body written by hand, so a test decides when each
    byte is sent (and can see the answer arrive before the body ends)."""

    def __init__(self, controller: Controller, api: ApiClient, image_id: str) -> None:
        self.host = controller.config.listen_host
        self.port = controller.config.listen_port
        self.head = (
            f"PUT {IMAGES}/{image_id}/file HTTP/1.1\r\nHost: {self.host}\r\n"
            f"X-Auth-Token: {api.token}\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(self.head)

    async def send(self, data: bytes) -> None:
        self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await self.writer.drain()

    async def finish(self) -> int:
        self.writer.write(b"0\r\n\r\n")
        return await self.status()

    async def status(self) -> int:
        line = await asyncio.wait_for(self.reader.readline(), 30)
        return int(line.split()[1])

    def close(self) -> None:
        self.writer.close()


# -- 1. virtual size ---------------------------------------------------------------------


async def test_qcow2_claiming_100_tib_is_refused_on_m1_nano(member_api: ApiClient) -> None:
    image = await _image(member_api, "qcow2")
    status, body = await _put(member_api, image["id"], crafted_qcow2(100 * TiB))
    assert status == 204, body
    _, shown, _ = await member_api.get(f"{IMAGES}/{image['id']}")
    assert shown["size"] == 200 * 1024
    assert shown["virtual_size"] == 100 * TiB

    server = {"name": "big", "imageRef": image["id"], "flavorRef": "1", "networks": "none"}
    status, body, _ = await member_api.post(SERVERS, json={"server": server})
    assert status == 400, body
    assert body["badRequest"]["message"] == (
        "Flavor's disk is too small for requested image. "
        f"Flavor disk is {GiB} bytes, image is {100 * TiB} bytes."
    )
    _, listed, _ = await member_api.get(SERVERS)
    assert listed["servers"] == []

    # the same data declared "raw": agents boot what it really is, so the header counts
    disguised = await _image(member_api, "raw")
    assert (await _put(member_api, disguised["id"], crafted_qcow2(100 * TiB)))[0] == 204
    _, shown, _ = await member_api.get(f"{IMAGES}/{disguised['id']}")
    assert shown["virtual_size"] == 100 * TiB
    server["imageRef"] = disguised["id"]
    status, body, _ = await member_api.post(SERVERS, json={"server": server})
    assert status == 400, body
    assert body["badRequest"]["message"].endswith(f"image is {100 * TiB} bytes.")


# -- 2. size cap and quotas ----------------------------------------------------------------


async def test_upload_stops_at_the_size_cap_and_leaves_nothing(
    controller: Controller, member_api: ApiClient
) -> None:
    controller.config.image_size_cap = 256 * 1024
    image = await _image(member_api)
    upload = _ChunkedUpload(controller, member_api, image["id"])
    await upload.open()
    try:
        # 512 KiB of a body that has not ended: the answer comes now, not at its end
        for _ in range(8):
            await upload.send(b"x" * 65536)
        assert await upload.status() == 413
    finally:
        upload.close()
    await wait_for(lambda: _leftovers(controller) == [], 5, 0.02, "the partial file to go")
    assert await _status(member_api, image["id"]) == "queued"

    # a declared length over the cap is refused before any byte is read, with Glance's text
    status, body = await _put(member_api, image["id"], b"y" * (300 * 1024))
    assert status == 413
    assert _message(body).startswith("The incoming image is too large")
    assert await _status(member_api, image["id"]) == "queued"
    assert _leftovers(controller) == []
    status, body = await _put(member_api, image["id"], b"z" * 1000)
    assert status == 204, body


async def test_image_count_total_per_project(
    controller: Controller, api: ApiClient, member_api: ApiClient
) -> None:
    controller.config.image_count_total = 2
    await _image(member_api)
    await _image(member_api)
    status, body, _ = await member_api.post(IMAGES, json={"name": "third", "disk_format": "raw"})
    assert status == 413, body
    assert _message(body) == (
        f"Project {member_api.project_id} is over a limit for [Resource image_count_total "
        "is over limit of 2 due to current usage 2 and delta 1]"
    )
    _, listed, _ = await member_api.get(IMAGES + "?owner=" + member_api.project_id)
    assert len(listed["images"]) == 2
    await _image(api)  # another project is not affected


async def test_image_size_total_per_project(
    controller: Controller, api: ApiClient, member_api: ApiClient
) -> None:
    controller.config.image_size_total = 1  # MiB
    first = await _image(member_api)
    assert (await _put(member_api, first["id"], b"a" * (700 * 1024)))[0] == 204

    second = await _image(member_api)
    status, body = await _put(member_api, second["id"], b"b" * (700 * 1024))
    assert status == 413
    assert _message(body) == (
        "Image exceeds the storage quota: The size of the data 716800 will exceed the "
        f"limit. {1024 * 1024 - 700 * 1024} bytes remaining."
    )
    assert await _status(member_api, second["id"]) == "queued"
    assert [p.name for p in _leftovers(controller)] == [first["id"]]
    # streamed (no length): reading stops where the quota ends
    upload = _ChunkedUpload(controller, member_api, second["id"])
    await upload.open()
    try:
        for _ in range(6):
            await upload.send(b"c" * 65536)
        assert await upload.status() == 413
    finally:
        upload.close()
    await wait_for(lambda: len(_leftovers(controller)) == 1, 5, 0.02, "the partial file to go")

    assert (await _put(member_api, second["id"], b"d" * (324 * 1024)))[0] == 204  # exactly full
    third = await _image(member_api)
    status, body = await _put(member_api, third["id"], b"e")
    assert status == 413
    assert _message(body) == (
        f"Project {member_api.project_id} is over a limit for [Resource image_size_total "
        "is over limit of 1 due to current usage 1 and delta 0]"
    )
    other = await _image(api)  # the admin's project has its own quota
    assert (await _put(api, other["id"], b"f" * (700 * 1024)))[0] == 204


async def test_image_count_uploading_per_project(
    controller: Controller, member_api: ApiClient
) -> None:
    controller.config.image_count_uploading = 1
    first = await _image(member_api)
    second = await _image(member_api)
    upload = _ChunkedUpload(controller, member_api, first["id"])
    await upload.open()
    try:
        await upload.send(b"x" * 1024)

        async def saving() -> bool:
            return await _status(member_api, first["id"]) == "saving"

        await wait_for(saving, 5, 0.02, "the first upload to be saving")
        status, body = await _put(member_api, second["id"], b"y" * 1024)
        assert status == 413
        assert "image_count_uploading is over limit of 1" in _message(body)
        assert await _status(member_api, second["id"]) == "queued"
        assert await upload.finish() == 204
    finally:
        upload.close()
    assert (await _put(member_api, second["id"], b"y" * 1024))[0] == 204


# -- snapshots count too; rebuild checks the size as create does ----------------------------


async def test_snapshots_count_and_rebuild_resize_check_virtual_size(
    controller: Controller, api: ApiClient, member_api: ApiClient, fake_driver: FakeDriver
) -> None:
    small = await _image(api, visibility="public")
    assert (await _put(api, small["id"], b"\0" * 4096))[0] == 204
    server = {"name": "vm", "imageRef": small["id"], "flavorRef": "1", "networks": "none"}
    status, body, _ = await api.post(SERVERS, json={"server": server})
    assert status == 202, body
    uuid = body["server"]["id"]
    await api.wait_server(uuid, "ACTIVE")

    big = await _image(api, "qcow2")
    assert (await _put(api, big["id"], crafted_qcow2(100 * TiB)))[0] == 204
    status, body, _ = await api.post(
        f"{SERVERS}/{uuid}/action", json={"rebuild": {"imageRef": big["id"]}}
    )
    assert status == 400, body
    assert body["badRequest"]["message"].startswith("Flavor's disk is too small")

    # a zero-disk flavor ("as large as the image") is for admins only, as Nova's policy says
    status, body, _ = await api.post(
        "/compute/v2.1/flavors", json={"flavor": {"name": "z", "ram": 64, "vcpus": 1, "disk": 0}}
    )
    assert status == 200, body
    zero = body["flavor"]["id"]
    on_zero = {"name": "z", "imageRef": small["id"], "flavorRef": zero, "networks": "none"}
    status, body, _ = await member_api.post(SERVERS, json={"server": on_zero})
    assert status == 403, body
    assert body["forbidden"]["message"] == (
        "Only volume-backed servers are allowed for flavors with zero disk."
    )
    # an admin's server on it holds the 100 TiB image; resizing to m1.small is refused
    on_zero["imageRef"] = big["id"]
    status, body, _ = await api.post(SERVERS, json={"server": on_zero})
    assert status == 202, body
    zuuid = body["server"]["id"]
    await api.wait_server(zuuid, "ACTIVE")
    status, body, _ = await api.post(
        f"{SERVERS}/{zuuid}/action", json={"resize": {"flavorRef": "4"}}
    )
    assert status == 400, body
    assert body["badRequest"]["message"] == (
        "Flavor's disk is too small for requested image. "
        f"Flavor disk is {20 * GiB} bytes, image is {100 * TiB} bytes."
    )

    # the agent's snapshot upload meets the project's byte quota: 100 bytes are left
    controller.config.image_size_total = 1  # MiB
    filler = await _image(api)
    left = 1024 * 1024 - 4096 - len(crafted_qcow2(100 * TiB)) - 100
    assert (await _put(api, filler["id"], b"\0" * left))[0] == 204
    status, body, _ = await api.post(
        f"{SERVERS}/{uuid}/action", json={"createImage": {"name": "snap"}}
    )
    assert status == 202, body
    _, listed, _ = await api.get(IMAGES + "?name=snap")
    (snap,) = listed["images"]

    async def snapshot_settled() -> bool:
        _, shown, _ = await api.get(f"{SERVERS}/{uuid}")
        return shown["server"]["OS-EXT-STS:task_state"] is None

    await wait_for(snapshot_settled, 10, 0.05, "the snapshot to end")
    assert await _status(api, snap["id"]) == "killed"
    assert snap["id"] not in [p.name for p in _leftovers(controller)]

    controller.config.image_count_total = 4  # small, big, filler, snap: the project is full
    for action in ({"createImage": {"name": "snap2"}}, {"shelve": None}):
        status, body, _ = await api.post(f"{SERVERS}/{uuid}/action", json=action)
        assert status == 403, (action, body)
        assert "image_count_total is over limit of 4" in body["forbidden"]["message"]
    _, shown, _ = await api.get(f"{SERVERS}/{uuid}")
    assert shown["server"]["status"] == "ACTIVE"
    assert shown["server"]["OS-EXT-STS:task_state"] is None
    _, listed, _ = await api.get(IMAGES)
    assert len(listed["images"]) == 4


# -- 3. console log bound --------------------------------------------------------------------


async def test_console_output_is_bounded_to_the_tail(
    api: ApiClient, fake_driver: FakeDriver
) -> None:
    image = await _image(api)
    assert (await _put(api, image["id"], b"\0" * 4096))[0] == 204
    server = {"name": "chatty", "imageRef": image["id"], "flavorRef": "1", "networks": "none"}
    status, body, _ = await api.post(SERVERS, json={"server": server})
    assert status == 202, body
    uuid = body["server"]["id"]
    await api.wait_server(uuid, "ACTIVE")
    # the guest writes ~400 KB to its serial console (2000 lines of 200 bytes)
    chatter = [f"{n:06d} " + "x" * 192 for n in range(2000)]
    fake_driver._guests[uuid].log.extend(chatter)

    action = f"{SERVERS}/{uuid}/action"
    status, body, _ = await api.post(action, json={"os-getConsoleOutput": {}})
    assert status == 200, body
    output = body["output"]
    assert 0 < len(output.encode()) <= 100 * 1024  # the agent's console_log_max_bytes
    assert output.endswith(chatter[-1] + "\n")
    assert chatter[0] not in output  # the head is gone, the tail is kept
    status, body, _ = await api.post(action, json={"os-getConsoleOutput": {"length": 3}})
    assert status == 200, body
    assert body["output"].split("\n") == chatter[-3:]
