"""Shelve on a real libvirtd through the `openstack` CLI: the tiny guest is shelved (snapshot,
then offloaded at once: shelved_offload_time 0, the default), leaves no domain and no files on
its host, and unshelve boots it again from the shelved snapshot with the same hostname."""

from __future__ import annotations

import pytest

from tests.libvirt_e2e.conftest import HOST, Cloud
from tests.libvirt_e2e.host import TINY_IMAGE, domain_names, host_skip_reason, qemu_img_info, virsh

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

FLAVOR = "m1.micro"  # the tiny guest does not boot in m1.nano's 64 MiB
BOOT_TIMEOUT = 180


def _wait_console(cloud: Cloud, name: str, needle: str) -> str:
    out = ""

    def seen() -> bool:
        nonlocal out
        out = cloud.console(name)
        return needle in out

    try:
        cloud.wait(seen, BOOT_TIMEOUT, f"{needle!r} on the console of {name}", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- console of {name} ---\n{out[-2000:]}") from None
    return out


def test_shelve_offload_unshelve_boots_from_the_snapshot(cloud: Cloud) -> None:
    cloud.run(
        "image",
        "create",
        "--file",
        str(TINY_IMAGE),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "tiny",
    )
    server = cloud.json("server", "create", "--image", "tiny", "--flavor", FLAVOR, "--wait", "sh1")
    uuid = server["id"]
    cloud.ids.add(uuid)
    domain = cloud.show("sh1")["OS-EXT-SRV-ATTR:instance_name"]
    _wait_console(cloud, "sh1", "boot done")

    cloud.run("server", "shelve", "sh1")
    shelved = cloud.wait_status("sh1", "SHELVED_OFFLOADED", timeout=300)
    assert shelved["OS-EXT-SRV-ATTR:host"] is None, shelved
    snapshot = cloud.json("image", "show", "sh1-shelved")
    assert snapshot["status"] == "active" and snapshot["visibility"] == "private", snapshot
    # nothing of it is left on the host: no libvirt domain (by uuid or name), no directory
    assert virsh("dominfo", uuid).returncode != 0, virsh("dominfo", uuid).stdout
    assert domain not in domain_names()
    assert not (cloud.instances / uuid).exists(), list((cloud.instances / uuid).iterdir())

    cloud.run("server", "unshelve", "sh1")
    active = cloud.wait_status("sh1", "ACTIVE", timeout=300)
    assert active["OS-EXT-SRV-ATTR:host"] == HOST, active
    out = _wait_console(cloud, "sh1", "boot done")
    lines = out.splitlines()
    assert "hostname=sh1" in lines and f"uuid={uuid}" in lines, out
    # the new root disk is an overlay on the shelved snapshot, which Glance no longer has
    info = qemu_img_info(cloud.instances / uuid / "disk")
    backing = info.get("full-backing-filename") or info.get("backing-filename") or ""
    assert backing.endswith(f"/_base/{snapshot['id']}"), info
    names = [i["Name"] for i in cloud.json("image", "list")]
    assert "sh1-shelved" not in names, names

    cloud.run("server", "delete", "--wait", "sh1")
