"""Resize (confirm, revert) and cold migration of real guests through the `openstack` CLI.

One cloud for the module, one libvirt agent (lv1) for the resizes (allow_resize_to_same_host,
as a one-host cloud needs), then a second agent (lv2, its own data and instances dirs, same
libvirtd) joins for the cold migration. The tests run in file order and share the guest rz1.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from mininova.paths import INSTANCES_ROOT
from tests.e2e.procs import Agent
from tests.libvirt_e2e.conftest import HOST, VIRT_TYPE, Cloud, real_cloud
from tests.libvirt_e2e.host import TINY_IMAGE, host_skip_reason, purge_domains, qemu_img_info, virsh

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
HOST2 = "lv2"
BOOT_TIMEOUT = 180
GiB = 1 << 30


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MININOVA_ALLOW_RESIZE_TO_SAME_HOST", "1")
        shutil.rmtree(INSTANCES_ROOT / HOST2, ignore_errors=True)
        with real_cloud(request, HOST, Cloud, "mininova-e2e-resize-") as cl:
            try:
                yield cl
            finally:
                agent2 = cl.facts.get("agent2")
                if agent2 is not None:
                    with contextlib.suppress(Exception):
                        agent2.stop(signal.SIGTERM)
                with contextlib.suppress(Exception):
                    purge_domains(uuids=cl.instance_ids_in_db())
                shutil.rmtree(INSTANCES_ROOT / HOST2, ignore_errors=True)


def _boots(cloud: Cloud, name: str) -> int:
    return cloud.console(name).count("boot done")


def _wait_boots(cloud: Cloud, name: str, count: int) -> None:
    cloud.wait(
        lambda: _boots(cloud, name) >= count,
        BOOT_TIMEOUT,
        f"{name} to print 'boot done' {count} time(s)",
        interval=2,
    )


def _memory_mib(domain: str) -> int:
    xml = virsh("dumpxml", domain, check=True).stdout
    match = re.search(r"<memory unit='KiB'>(\d+)</memory>", xml)
    assert match, xml
    return int(match.group(1)) // 1024


def _guest_ram_kib(cloud: Cloud, name: str) -> int:
    """The RAM the guest's kernel saw at its last boot ("Memory: …K/<total>K available")."""
    seen = re.findall(r"Memory: \d+K/(\d+)K available", cloud.console(name))
    assert seen, cloud.console(name)[-2000:]
    return int(seen[-1])


def _disk(cloud: Cloud, uuid: str, host: str = HOST) -> Path:
    return INSTANCES_ROOT / host / uuid / "disk"


def test_boot(cloud: Cloud) -> None:
    cloud.run(
        "image", "create", "--file", str(TINY_IMAGE), "--disk-format", "qcow2",
        "--container-format", "bare", "--public", "tiny",
    )  # fmt: skip
    cloud.run("flavor", "create", "--ram", "256", "--vcpus", "2", "--disk", "2", "rz.big")
    cloud.run("flavor", "create", "--ram", "512", "--vcpus", "1", "--disk", "3", "rz.huge")
    server = cloud.json(
        "server", "create", "--image", "tiny", "--flavor", "m1.micro", "--network", "private",
        "--wait", "rz1",
    )  # fmt: skip
    cloud.ids.add(server["id"])
    cloud.facts["uuid"] = server["id"]
    cloud.facts["domain"] = cloud.show("rz1")["OS-EXT-SRV-ATTR:instance_name"]
    _wait_boots(cloud, "rz1", 1)
    assert _memory_mib(cloud.facts["domain"]) == 128
    assert _guest_ram_kib(cloud, "rz1") <= 128 * 1024


def test_resize_bigger_and_confirm(cloud: Cloud) -> None:
    uuid, domain = cloud.facts["uuid"], cloud.facts["domain"]
    old_disk_size = qemu_img_info(_disk(cloud, uuid))["virtual-size"]
    cloud.run("server", "resize", "--flavor", "rz.big", "--wait", "rz1", timeout=400)
    shown = cloud.wait_status("rz1", "VERIFY_RESIZE")
    assert "rz.big" in str(shown["flavor"])
    # the guest runs the new definition from the new, grown disk; the old one is kept
    assert _memory_mib(domain) == 256
    assert "<vcpu placement='static'>2</vcpu>" in virsh("dumpxml", domain, check=True).stdout
    assert qemu_img_info(_disk(cloud, uuid))["virtual-size"] == 2 * GiB > old_disk_size
    assert (INSTANCES_ROOT / HOST / f"{uuid}_resize" / "disk").exists()
    _wait_boots(cloud, "rz1", 1)  # the new console log: it booted again
    assert 200 * 1024 < _guest_ram_kib(cloud, "rz1") <= 256 * 1024  # the guest sees 256 MiB
    cloud.run("server", "resize", "confirm", "rz1")
    cloud.wait_status("rz1", "ACTIVE")
    assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
    assert _memory_mib(domain) == 256


def test_resize_and_revert(cloud: Cloud) -> None:
    uuid, domain = cloud.facts["uuid"], cloud.facts["domain"]
    disk_before = qemu_img_info(_disk(cloud, uuid))
    cloud.run("server", "resize", "--flavor", "rz.huge", "--wait", "rz1", timeout=400)
    cloud.wait_status("rz1", "VERIFY_RESIZE")
    assert _memory_mib(domain) == 512
    assert qemu_img_info(_disk(cloud, uuid))["virtual-size"] == 3 * GiB
    cloud.run("server", "resize", "revert", "rz1")
    shown = cloud.wait_status("rz1", "ACTIVE")
    assert "rz.big" in str(shown["flavor"])
    assert _memory_mib(domain) == 256
    disk_after = qemu_img_info(_disk(cloud, uuid))
    assert disk_after["virtual-size"] == disk_before["virtual-size"]
    assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
    _wait_boots(cloud, "rz1", 2)  # the old console log: its first boot and this one
    assert 200 * 1024 < _guest_ram_kib(cloud, "rz1") <= 256 * 1024


def test_cold_migration_between_two_agents(cloud: Cloud) -> None:
    uuid = cloud.facts["uuid"]
    agent2 = Agent(
        cloud.serve,
        HOST2,
        driver="libvirt",
        data_dir=cloud.root / "agent2",
        extra_env={"MININOVA_AGENT_VIRT_TYPE": VIRT_TYPE},
    )
    cloud.facts["agent2"] = agent2
    agent2.start()
    cloud.wait(
        lambda: any(
            s["State"] == "up" and s["Host"] == HOST2
            for s in cloud.json("compute", "service", "list", "--service", "nova-compute")
        ),
        90,
        "the second agent to be up",
    )
    cloud.run("server", "migrate", "--wait", "rz1", timeout=600)
    shown = cloud.wait_status("rz1", "VERIFY_RESIZE")
    assert shown["OS-EXT-SRV-ATTR:host"] == HOST2
    moved = qemu_img_info(_disk(cloud, uuid, HOST2))
    assert moved["virtual-size"] == 2 * GiB
    assert not moved.get("backing-filename")  # standalone: it came through the controller
    _wait_boots(cloud, "rz1", 1)  # booted from the moved disk on lv2
    cloud.run("server", "resize", "confirm", "rz1")
    cloud.wait_status("rz1", "ACTIVE")
    # the source host keeps nothing of it; the controller's copy is gone too
    assert not (INSTANCES_ROOT / HOST / uuid).exists()
    assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
    assert list((cloud.serve.data_dir / "migrations").iterdir()) == []
    listed = cloud.json("server", "migration", "list")
    assert {m["Status"] for m in listed} == {"confirmed", "reverted"}
    cloud.run("server", "delete", "--wait", "rz1")
    assert not (INSTANCES_ROOT / HOST2 / uuid).exists()
