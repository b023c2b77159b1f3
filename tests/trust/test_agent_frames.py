"""No Keystone token ever reaches an agent: every frame the controller sends, on a real guest.

An in-process controller and an in-process agent with the real LibvirtDriver (QEMU) go
through boot, snapshot, noVNC console and delete, driven through the public API. Every
websocket message the controller sends is recorded; no string in any of them may be, or
embed, a Keystone token, and the capabilities the orders carried are dead afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from mininova.agent import Agent
from mininova.controller import Controller
from mininova.store import schema
from tests.conftest import ApiClient
from tests.console.conftest import token_of
from tests.console.rfbclient import connect, rfb_handshake
from tests.kit.wait import wait_for
from tests.libvirt_e2e.host import TINY_IMAGE, host_skip_reason, purge_domains

from .conftest import (
    IMAGES,
    SERVERS,
    AgentHttp,
    Sent,
    agent_config,
    assert_no_keystone_token,
    file_path,
    nova_error,
    orders,
    protocol_frames,
    start_agent,
    stop_agent,
    stored_credential,
)

pytestmark = pytest.mark.libvirt

HOST = "trust-lv1"
ORDERS = ("spawn", "snapshot", "open_console_tunnel", "destroy")
ACTIVE_TIMEOUT = 180.0
SNAPSHOT_TIMEOUT = 300.0


@dataclass
class LibvirtAgent:
    agent: Agent
    data_dir: Path
    uuids: set[str]


@pytest.fixture
async def libvirt_agent(
    controller: Controller, tmp_path: Path, sent_frames: list[Sent]
) -> AsyncIterator[LibvirtAgent]:
    """A real-libvirt agent; frames are recorded from before its hello (`sent_frames`)."""
    reason = host_skip_reason()
    if reason:
        pytest.skip(reason)
    from mininova.virt.libvirt.driver import LibvirtDriver

    # QEMU runs as libvirt-qemu: every parent of the instance files must be searchable.
    root = Path(tempfile.mkdtemp(prefix="mininova-trust-", dir="/var/tmp"))
    root.chmod(0o711)
    assert controller.store is not None
    # Domain names are instance-%08x of the row id: start far from other clouds on this
    # libvirtd (a fresh database would name its first guest instance-00000001).
    await controller.store.seed_sequence(schema.instances, 0x75000000 + secrets.randbelow(0x100000))
    driver = LibvirtDriver(
        uri="qemu:///system",
        virt_type="qemu",
        instances_path=root / "instances",
        sync_interval=0,
        shutdown_timeout=5,
        lease_wait=0,
    )
    await driver.init_host()
    uuids: set[str] = set()
    task = None
    try:
        data_dir = tmp_path / "agent"
        config = agent_config(
            controller, data_dir, HOST, driver="libvirt", instances_dir=str(root / "instances")
        )
        agent, task = await start_agent(config, driver)
        yield LibvirtAgent(agent, data_dir, uuids)
    finally:
        if task is not None:
            await stop_agent(task)
        with contextlib.suppress(Exception):
            await driver.cleanup_host()
        await asyncio.to_thread(purge_domains, uuids=uuids)
        shutil.rmtree(root, ignore_errors=True)


async def _until(what: str, timeout: float, probe) -> object:  # noqa: ANN001
    last: list[object] = [None]

    async def done() -> bool:
        finished, last[0] = await probe()
        return finished

    await wait_for(done, timeout, 0.5, lambda: f"{what}; last: {last[0]}")
    return last[0]


async def _server_status(api: ApiClient, uuid: str, want: str, timeout: float) -> dict:
    async def probe() -> tuple[bool, object]:
        status, body, _ = await api.get(f"{SERVERS}/{uuid}", version="2.100")
        assert status == 200, body
        server = body["server"]
        if server["status"] == "ERROR" and want != "ERROR":
            raise AssertionError(f"{uuid} went to ERROR: {server.get('fault')}")
        return server["status"] == want and server["OS-EXT-STS:task_state"] is None, server

    return await _until(f"{uuid} to be {want}", timeout, probe)  # type: ignore[return-value]


async def _image_active(api: ApiClient, image_id: str, timeout: float) -> dict:
    async def probe() -> tuple[bool, object]:
        status, image, _ = await api.get(f"{IMAGES}/{image_id}")
        assert status == 200, image
        if image["status"] == "killed":
            raise AssertionError(f"snapshot {image_id} was killed: {image}")
        return image["status"] == "active", image

    return await _until(f"image {image_id} to be active", timeout, probe)  # type: ignore[return-value]


async def _server_gone(api: ApiClient, uuid: str, timeout: float) -> None:
    async def probe() -> tuple[bool, object]:
        status, body, _ = await api.get(f"{SERVERS}/{uuid}")
        return status == 404, (status, body)

    await _until(f"{uuid} to be deleted", timeout, probe)


async def test_no_keystone_token_reaches_an_agent(
    controller: Controller,
    api: ApiClient,
    agent_http: AgentHttp,
    libvirt_agent: LibvirtAgent,
    sent_frames: list[Sent],
) -> None:
    base = controller.config.base_url
    assert controller.services is not None
    hub = controller.hub
    link = hub._sockets[HOST]  # the controller's end of this agent's link

    image = await api.upload_image("tiny", TINY_IMAGE.read_bytes())
    status, body, _ = await api.post(
        SERVERS,
        json={"server": {"name": "trust-vm", "imageRef": image, "flavorRef": "2"}},
    )
    assert status == 202, body
    uuid = body["server"]["id"]
    libvirt_agent.uuids.add(uuid)
    await _server_status(api, uuid, "ACTIVE", ACTIVE_TIMEOUT)

    # Snapshot: the agent uploads into the queued image with the order's capability.
    status, body, _ = await api.post(
        f"{SERVERS}/{uuid}/action", json={"createImage": {"name": "snap"}}, version="2.45"
    )
    assert status == 202, body
    snap = body["image_id"]
    snap_image = await _image_active(api, snap, SNAPSHOT_TIMEOUT)
    assert snap_image["size"] > 0
    await _server_status(api, uuid, "ACTIVE", 60)

    # Console: the noVNC URL, then the proxy websocket and an RFB handshake with QEMU's VNC.
    status, body, _ = await api.post(
        f"{SERVERS}/{uuid}/remote-consoles",
        json={"remote_console": {"protocol": "vnc", "type": "novnc"}},
        version="2.6",
    )
    assert status == 200, body
    token = token_of(body["remote_console"]["url"])
    ws_url = base.replace("http://", "ws://") + f"/console/websockify?token={token}"
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, ws_url, headers={"Origin": base})
        rfb = await rfb_handshake(ws)
        assert rfb.width > 0 and rfb.height > 0
        await ws.close()

    status, _, _ = await api.delete(f"{SERVERS}/{uuid}")
    assert status == 204
    await _server_gone(api, uuid, 120)

    # -- what the agent was told ------------------------------------------------------------
    on_link = protocol_frames(sent_frames, link)
    assert any(
        isinstance(f.get("result"), dict) and "credential" in f["result"] for f in on_link
    ), "the hello reply (issuing the host credential) was not recorded"
    for method in ORDERS:
        assert orders(on_link, method), f"no {method!r} order recorded; saw " + repr(
            sorted({f.get("method") for f in on_link if f.get("method")})
        )
    (spawn,) = [f for f in orders(on_link, "spawn") if f["params"]["instance"]["uuid"] == uuid]
    spawn_cap = spawn["params"]["instance"]["image"]["capability"]
    assert spawn_cap.startswith("mnc_"), spawn["params"]["instance"]["image"]
    (snapshot,) = orders(on_link, "snapshot")
    snap_cap = snapshot["params"]["capability"]
    assert snap_cap.startswith("mnc_"), snapshot["params"]
    assert snapshot["params"]["upload_url"] == base + file_path(snap)
    (tunnel,) = orders(on_link, "open_console_tunnel")
    assert tunnel["params"]["tunnel_token"]

    every_json = protocol_frames(sent_frames)  # the link, and anything else JSON we sent
    assert len(every_json) >= len(on_link) > 0
    checked = await assert_no_keystone_token(controller, every_json, [api.token])
    assert checked > 0
    # Console bytes and any other binary frame: not even a substring of the admin token.
    for frame in sent_frames:
        raw = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
        assert api.token.encode() not in raw

    # -- the order capabilities are dead ------------------------------------------------------
    assert len(controller.services.capabilities) == 0
    credential = stored_credential(libvirt_agent.data_dir)
    status, raw, body = await agent_http.get(file_path(image), credential, spawn_cap)
    assert status == 401, raw[:300]
    nova_error(body, 401)
    status, raw, body = await agent_http.put(file_path(snap), credential, snap_cap, b"QFI\xfb")
    assert status == 401, raw[:300]
    nova_error(body, 401)
