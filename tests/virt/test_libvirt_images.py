"""Image cache: one download per image under concurrency; checksum mismatch leaves nothing."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace

import pytest
from aiohttp import web
from virtspec import make_spec

from mininova.virt.driver import ControllerAccess, DriverError
from mininova.virt.libvirt.images import ImageCache, inspect_image

PAYLOAD = b"\x00mininova-image" * 50_000
ACCESS = ControllerAccess(credential="mnh_host")


@pytest.fixture
async def image_server():
    """Serves PAYLOAD at /image (slowly, so fetches overlap); counts requests and tokens."""
    hits: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        hits.append(
            f"{request.headers.get('Authorization')} {request.headers.get('X-Mininova-Capability')}"
        )
        resp = web.StreamResponse()
        resp.content_length = len(PAYLOAD)
        await resp.prepare(request)
        for i in range(0, len(PAYLOAD), 65536):
            await resp.write(PAYLOAD[i : i + 65536])
            await asyncio.sleep(0.01)  # a slow origin on purpose (downloads overlap)
        return resp

    app = web.Application()
    app.router.add_get("/image", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/image", hits
    await runner.cleanup()


def _image(url: str, checksum: str):
    return replace(make_spec().image, id="img-42", url=url, checksum=checksum, capability="cap-1")


async def test_concurrent_fetches_download_once(image_server, tmp_path):
    url, hits = image_server
    cache = ImageCache(tmp_path / "_base", ACCESS)
    image = _image(url, hashlib.md5(PAYLOAD).hexdigest())
    paths = await asyncio.gather(cache.fetch(image), cache.fetch(image), cache.fetch(image))
    assert len(set(paths)) == 1
    assert paths[0].read_bytes() == PAYLOAD
    assert hits == ["Bearer mnh_host cap-1"]  # host credential + capability, no Keystone token
    assert sorted(p.name for p in (tmp_path / "_base").iterdir()) == ["img-42"]
    await cache.fetch(image)
    assert len(hits) == 1


async def test_checksum_mismatch_leaves_nothing(image_server, tmp_path):
    url, _hits = image_server
    cache = ImageCache(tmp_path / "_base", ACCESS)
    with pytest.raises(DriverError, match=r"Image img-42 checksum mismatch: expected 0+, got "):
        await cache.fetch(_image(url, "0" * 32))
    assert list((tmp_path / "_base").iterdir()) == []


async def test_http_error_and_bad_id(image_server, tmp_path):
    url, _hits = image_server
    cache = ImageCache(tmp_path / "_base", ACCESS)
    with pytest.raises(DriverError, match="HTTP 404"):
        await cache.fetch(_image(url + "/missing", ""))
    assert list((tmp_path / "_base").iterdir()) == []
    with pytest.raises(DriverError, match="Invalid image id"):
        cache.path_for("../etc")


async def test_inspect_rejects_backing_file(tmp_path):
    if not __import__("shutil").which("qemu-img"):
        pytest.skip("qemu-img not installed")
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * 1024 * 1024)
    evil = tmp_path / "evil"
    proc = await asyncio.create_subprocess_exec(
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(evil)
    )
    assert await proc.wait() == 0
    with pytest.raises(DriverError, match="backing file"):
        await inspect_image(evil)
    assert await inspect_image(base) == ("raw", 1024 * 1024)
