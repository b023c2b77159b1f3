"""LibvirtDriver against a real libvirtd: boot the tiny image and walk the power states."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from virtspec import make_spec

from mininova.virt import driver as api
from tests.kit.wait import wait_for

pytestmark = pytest.mark.libvirt
URI = "qemu:///system"
IMAGE = Path(
    os.environ.get("MININOVA_TINY_IMAGE")
    or Path(__file__).resolve().parents[2] / "examples/images/out/tiny.qcow2"
)


def _require_host() -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        pytest.skip("libvirt-python is not installed (pip install libvirt-python)")
    if not shutil.which("virsh") or not shutil.which("qemu-img"):
        pytest.skip("virsh/qemu-img not installed on this host")
    proc = subprocess.run(
        ["virsh", "-c", URI, "version"], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        pytest.skip(f"libvirtd not reachable at {URI}: {proc.stderr.strip()}")
    if not IMAGE.is_file():
        pytest.skip(
            f"tiny guest image not built: {IMAGE} missing (run examples/images/build-tiny-image.sh)"
        )


@pytest.fixture
async def image_url():
    """Serve the tiny image over HTTP as the controller would."""
    app = web.Application()

    async def serve(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(IMAGE)

    app.router.add_get("/image", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/image"
    await runner.cleanup()


@pytest.fixture
async def driver():
    _require_host()
    from mininova.virt.libvirt.driver import LibvirtDriver

    # pytest's tmp dirs are 0700; QEMU runs unprivileged and must reach the disks.
    root = Path(tempfile.mkdtemp(prefix="mininova-virt-test-", dir="/var/tmp"))
    root.chmod(0o755)
    drv = LibvirtDriver(
        uri=URI,
        virt_type=os.environ.get("MININOVA_VIRT_TYPE", "qemu"),
        instances_path=root / "instances",
        shutdown_timeout=5,
        reboot_timeout=5,
        lease_wait=0,
        sync_interval=0,
    )
    events: list[tuple[str, int]] = []

    async def on_event(uuid: str, state: int) -> None:
        events.append((uuid, state))

    drv.set_event_callback(on_event)
    await drv.init_host()
    drv.test_events = events
    yield drv
    for guest in await drv.list_guests():
        if guest.domain_name.startswith("instance-7e57"):
            await drv.destroy(guest.uuid)
    await drv.cleanup_host()
    shutil.rmtree(root, ignore_errors=True)


async def _until(pred, timeout: float, what: str):
    return await wait_for(pred, timeout, 0.5, what)


async def _has_ip(drv, uuid: str) -> bool:
    addr = (await drv.get_info(uuid)).addresses[0]["addr"]
    return f"ip={addr}" in await drv.console_output(uuid)


async def _state(drv, uuid: str) -> int:
    return (await drv.get_info(uuid)).power_state


async def test_full_lifecycle(driver, image_url):
    data = IMAGE.read_bytes()
    spec = make_spec(domain_name="instance-7e570001", hostname="tiny-test-1")
    spec.image = replace(spec.image, url=image_url, checksum=hashlib.md5(data).hexdigest())
    inst_dir = driver.instances_path / spec.uuid

    info = await driver.spawn(spec)
    assert info.power_state == api.RUNNING
    assert info.addresses and info.addresses[0]["mac"] == spec.mac_address
    assert (inst_dir / "disk").exists() and (inst_dir / "disk.config").exists()
    assert [g.uuid for g in await driver.list_guests()].count(spec.uuid) == 1

    async def booted():
        out = await driver.console_output(spec.uuid)
        return f"uuid={spec.uuid}" in out and "hostname=tiny-test-1" in out

    await _until(booted, 90, "config drive values on the serial console")
    out = await driver.console_output(spec.uuid)
    if "ip=" in out:  # the guest got the address we report (lease or reservation)
        await _until(lambda: _has_ip(driver, spec.uuid), 20, "guest address on the console")

    ep = await driver.console_endpoint(spec.uuid)  # VNC on a unix socket, no TCP port
    assert ep.port is None and ep.unix_path == inst_dir / "vnc.sock"
    reader, writer = await asyncio.open_unix_connection(str(ep.unix_path))
    assert (await reader.readexactly(12)).startswith(b"RFB 003.")
    writer.close()
    res = await driver.host_resources()
    assert res.vcpus_used >= 1 and res.memory_mb_used >= 128
    assert res.hypervisor_type in ("QEMU", "KVM") and res.hypervisor_version > 0

    await driver.power_off(spec.uuid)
    assert await _state(driver, spec.uuid) == api.SHUTDOWN
    await driver.power_on(spec.uuid)
    assert await _state(driver, spec.uuid) == api.RUNNING
    await driver.pause(spec.uuid)
    assert await _state(driver, spec.uuid) == api.PAUSED
    await driver.unpause(spec.uuid)
    assert await _state(driver, spec.uuid) == api.RUNNING
    await driver.suspend(spec.uuid)
    assert await _state(driver, spec.uuid) == api.SUSPENDED
    await driver.resume(spec.uuid)
    assert await _state(driver, spec.uuid) == api.RUNNING
    await driver.reboot(spec.uuid, hard=False)
    assert await _state(driver, spec.uuid) == api.RUNNING
    await driver.reboot(spec.uuid, hard=True)
    assert await _state(driver, spec.uuid) == api.RUNNING

    async def saw(state):
        return (spec.uuid, state) in driver.test_events

    for state in (api.SHUTDOWN, api.PAUSED, api.SUSPENDED, api.RUNNING):
        await _until(lambda s=state: saw(s), 5, f"lifecycle event {state}")

    # A restarted agent (new driver, same state dir) re-adopts the guest.
    from mininova.virt.libvirt.driver import LibvirtDriver

    again = LibvirtDriver(
        uri=URI, virt_type="qemu", instances_path=driver.instances_path, sync_interval=0
    )
    await again.init_host()
    try:
        adopted = {g.uuid: g for g in await again.list_guests()}
        assert adopted[spec.uuid].power_state == api.RUNNING
        assert adopted[spec.uuid].domain_name == "instance-7e570001"
    finally:
        await again.cleanup_host()

    await driver.destroy(spec.uuid)
    with pytest.raises(api.GuestNotFound):
        await driver.get_info(spec.uuid)
    assert not inst_dir.exists()
    assert (driver.instances_path / "_base" / spec.image.id).exists()
    await driver.destroy(spec.uuid)  # idempotent


async def test_bad_checksum_cleans_up(driver, image_url):
    spec = make_spec(domain_name="instance-7e570002")
    spec.image = replace(spec.image, id="img-bad", url=image_url, checksum="0" * 32)
    with pytest.raises(api.DriverError, match="checksum mismatch"):
        await driver.spawn(spec)
    assert not (driver.instances_path / spec.uuid).exists()
    assert not (driver.instances_path / "_base" / "img-bad").exists()
    with pytest.raises(api.GuestNotFound):
        await driver.get_info(spec.uuid)


async def test_virt_type_auto_probe(tmp_path):
    """auto picks KVM only if a throwaway KVM guest boots, and says why."""
    _require_host()
    from mininova.virt.libvirt.driver import LibvirtDriver

    root = Path(tempfile.mkdtemp(prefix="mininova-virt-probe-", dir="/var/tmp"))
    root.chmod(0o711)
    drv = LibvirtDriver(
        uri=URI, virt_type="auto", instances_path=root / "instances", sync_interval=0
    )
    try:
        await drv.init_host()
        res = await drv.host_resources()
        print(f"virt_type={drv.virt_type}: {drv.virt_type_reason}")
        assert drv.virt_type in ("kvm", "qemu") and drv.virt_type_reason
        assert res.hypervisor_type == ("KVM" if drv.virt_type == "kvm" else "QEMU")
        assert res.vcpus >= 1 and res.memory_mb > 0 and res.local_gb > 0
    finally:
        await drv.cleanup_host()
        shutil.rmtree(root, ignore_errors=True)


async def test_refuses_instances_dir_qemu_cannot_reach():
    """A guest dir under a 0700 parent is refused at start, naming the parent and the user."""
    _require_host()
    from mininova.virt.driver import DriverError
    from mininova.virt.libvirt.driver import LibvirtDriver

    root = Path(tempfile.mkdtemp(prefix="mininova-virt-private-", dir="/var/tmp"))  # 0700
    drv = LibvirtDriver(uri=URI, virt_type="qemu", instances_path=root / "i", sync_interval=0)
    try:
        with pytest.raises(DriverError, match=rf"{root} \(mode 0700.*not searchable by the QEMU"):
            await drv.init_host()
    finally:
        await drv.cleanup_host()
        shutil.rmtree(root, ignore_errors=True)
