"""The server lifecycle on real libvirt guests through the `openstack` CLI, one guest for all.

One cloud for the module, configured for every step at once: soft delete on
(MININOVA_RECLAIM_INSTANCE_INTERVAL=3600), allow_resize_to_same_host (a one-host cloud needs
it for the resizes), shelved_offload_time 0 (the default: shelve offloads at once). One
libvirt agent (lv1) runs from the start; a second one (lv2, its own data and instances dirs,
same libvirtd) joins for the cold migration.

The tests run in file order and walk ONE tiny guest, lc1, through the lifecycle (a guest boot
under TCG costs tens of seconds, so it boots as few times as the steps need):

  boot -> rebuild to a second image -> resize bigger + confirm -> resize + revert
  -> shelve (offload) + unshelve -> cold migration lv1 -> lv2 + confirm
  -> soft delete -> restore -> force delete

A step that fails leaves lc1 in an unknown state: the steps after it skip, naming it. The
rebuild step alone may skip for missing tools (mtools, cpio) without stopping the others.

Rebuild: the second image is the tiny image with one change: its /init prints the banner
"mininova tiny guest v2" instead of "mininova tiny guest" (the initramfs on the image's FAT
boot partition is unpacked, edited and packed again with mtools and cpio). lc1 is rebuilt to
it, and its serial console then shows the second boot: the new banner, the same hostname and
uuid. The root disk is a fresh overlay on the second image's cached base, in the same domain.

Shelve: a snapshot, then offloaded at once; no domain and no files are left on the host, and
unshelve boots it again from the shelved snapshot with the same hostname.

Soft delete: `openstack server delete` shuts the domain off and keeps it (SOFT_DELETED),
`server restore` runs it again (ACTIVE), `server delete --force` removes the domain and its
files.

Whatever is left on either host -- domains, DHCP reservations, directories -- goes in the
fixture's finalizer, also when a test failed.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mininova.paths import INSTANCES_ROOT
from tests.e2e.procs import Agent
from tests.libvirt_e2e.conftest import HOST, VIRT_TYPE, Cloud, real_cloud
from tests.libvirt_e2e.host import (
    TINY_IMAGE,
    domain_names,
    domstate,
    host_skip_reason,
    purge_domains,
    qemu_img_info,
    virsh,
)

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
REBUILD_SKIP_REASON = next(
    (
        f"{tool} not installed (mtools, cpio)"
        for tool in ("mcopy", "cpio")
        if not shutil.which(tool)
    ),
    None,
)

HOST2 = "lv2"
NAME = "lc1"
FLAVOR = "m1.micro"  # the tiny guest does not boot in m1.nano's 64 MiB
BOOT_TIMEOUT = 180
GiB = 1 << 30
BANNER = "mininova tiny guest"
BANNER_V2 = "mininova tiny guest v2"
PARTITION = "@@1M"  # the FAT boot partition starts at 1 MiB (build-tiny-image.sh)

# The guest the steps share: uuid, domain, and the step that failed (the later ones skip).
STATE: dict[str, Any] = {"uuid": None, "domain": None, "broken": None}


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    env = {
        "MININOVA_RECLAIM_INSTANCE_INTERVAL": "3600",
        "MININOVA_ALLOW_RESIZE_TO_SAME_HOST": "1",
    }
    STATE.update(uuid=None, domain=None, broken=None)
    shutil.rmtree(INSTANCES_ROOT / HOST2, ignore_errors=True)  # left over from an interrupted run
    with real_cloud(request, HOST, Cloud, "mininova-e2e-lifecycle-", env=env) as cl:
        try:
            yield cl
        finally:
            agent2 = cl.facts.get("agent2")
            if agent2 is not None:
                with contextlib.suppress(Exception):
                    agent2.stop(signal.SIGTERM)
            with contextlib.suppress(Exception):
                purge_domains(uuids=cl.ids | cl.instance_ids_in_db())
            shutil.rmtree(INSTANCES_ROOT / HOST2, ignore_errors=True)


@contextlib.contextmanager
def step(name: str, *, first: bool = False) -> Iterator[tuple[str, str]]:
    """Run one lifecycle step on lc1: skip when an earlier step broke it (or never booted
    it); on a failure, name the step in the error and mark lc1 broken for the later ones."""
    if STATE["broken"] is not None:
        pytest.skip(
            f"step {name!r} not run: lc1 is in an unknown state since step "
            f"{STATE['broken']!r} failed (see its failure above)"
        )
    if not first and STATE["uuid"] is None:
        pytest.skip(f"step {name!r} not run: lc1 was never booted")
    try:
        yield STATE["uuid"], STATE["domain"]
    except Exception as exc:  # pytest's skip/fail outcomes are BaseExceptions: not caught
        STATE["broken"] = name
        exc.add_note(f"lifecycle step {name!r} failed; the later steps on {NAME} will skip")
        raise


# -- helpers -------------------------------------------------------------------------------


def _sh(*argv: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


def make_v2_image(work: Path) -> Path:
    """A copy of the tiny image whose /init prints BANNER_V2 as its first line."""
    env_fat = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    raw = work / "disk.raw"
    _sh("qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(TINY_IMAGE), str(raw))
    fat = f"{raw}{PARTITION}"
    initrd = work / "initrd.gz"
    subprocess.run(["mcopy", "-i", fat, "::/initrd.gz", str(initrd)], env=env_fat, check=True)
    root = work / "root"
    root.mkdir()
    _sh("cpio", "-id", "--quiet", cwd=root, stdin=gzip.decompress(initrd.read_bytes()))
    init = root / "init"
    text = init.read_text()
    assert f'say "{BANNER}"\n' in text, "the tiny image's /init changed: update this test"
    init.write_text(text.replace(f'say "{BANNER}"\n', f'say "{BANNER_V2}"\n', 1))
    names = sorted(_sh("find", ".", cwd=root).decode().splitlines())
    listing = ("\n".join(names) + "\n").encode()
    archive = _sh("cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet", cwd=root, stdin=listing)
    initrd.write_bytes(gzip.compress(archive, 9))
    subprocess.run(["mcopy", "-o", "-i", fat, str(initrd), "::/initrd.gz"], env=env_fat, check=True)
    image = work / "tiny-v2.qcow2"
    _sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image))
    return image


def _upload(cloud: Cloud, path: Path, name: str) -> str:
    image = cloud.json(
        "image", "create", "--file", str(path), "--disk-format", "qcow2",
        "--container-format", "bare", "--public", name,
    )  # fmt: skip
    return str(image["id"])


def _wait_boots(cloud: Cloud, count: int) -> str:
    """Wait for lc1's current console log to show `count` lines "boot done"; its text."""
    out = ""

    def seen() -> bool:
        nonlocal out
        out = cloud.console(NAME)
        return sum(line.startswith("boot done") for line in out.splitlines()) >= count

    try:
        cloud.wait(seen, BOOT_TIMEOUT, f"'boot done' x{count} on the console of {NAME}", 1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- console (tail) ---\n{out[-2500:]}") from None
    return out


def _memory_mib(domain: str) -> int:
    xml = virsh("dumpxml", domain, check=True).stdout
    match = re.search(r"<memory unit='KiB'>(\d+)</memory>", xml)
    assert match, xml
    return int(match.group(1)) // 1024


def _guest_ram_kib(cloud: Cloud) -> int:
    """The RAM the guest's kernel saw at its last boot ("Memory: …K/<total>K available")."""
    seen = re.findall(r"Memory: \d+K/(\d+)K available", cloud.console(NAME))
    assert seen, cloud.console(NAME)[-2000:]
    return int(seen[-1])


def _disk(uuid: str, host: str = HOST) -> Path:
    return INSTANCES_ROOT / host / uuid / "disk"


def _assert_domstate(domain: str, expected: str) -> None:
    state = domstate(domain)
    assert state == expected, f"virsh domstate {domain}: {state!r}, wanted {expected!r}"


# -- the lifecycle, in order ---------------------------------------------------------------


def test_boot(cloud: Cloud) -> None:
    """lc1 boots the tiny image in m1.micro: ACTIVE, a running 128 MiB domain, the guest's
    console shows the tiny image's banner and its hostname."""
    with step("boot", first=True):
        _upload(cloud, TINY_IMAGE, "tiny")
        cloud.run("flavor", "create", "--ram", "256", "--vcpus", "2", "--disk", "2", "rz.big")
        cloud.run("flavor", "create", "--ram", "512", "--vcpus", "1", "--disk", "3", "rz.huge")
        server = cloud.json(
            "server", "create", "--image", "tiny", "--flavor", FLAVOR, "--network", "private",
            "--wait", NAME,
        )  # fmt: skip
        cloud.ids.add(server["id"])
        assert server["status"] == "ACTIVE", server
        cloud.facts["server"] = server
        domain = cloud.show(NAME)["OS-EXT-SRV-ATTR:instance_name"]
        first = _wait_boots(cloud, 1).splitlines()
        assert BANNER in first and BANNER_V2 not in first, first
        assert f"hostname={NAME}" in first, first
        _assert_domstate(domain, "running")
        assert _memory_mib(domain) == 128
        assert _guest_ram_kib(cloud) <= 128 * 1024
        STATE.update(uuid=server["id"], domain=domain)


@pytest.mark.skipif(REBUILD_SKIP_REASON is not None, reason=REBUILD_SKIP_REASON or "")
def test_rebuild_to_another_image_shows_its_banner_and_the_same_hostname(
    cloud: Cloud, tmp_path: Path
) -> None:
    with step("rebuild") as (uuid, domain):
        server = cloud.facts["server"]
        v2_id = _upload(cloud, make_v2_image(tmp_path), "tiny-v2")
        disk = _disk(uuid)
        old_inode = disk.stat().st_ino

        out = cloud.run("server", "rebuild", "--image", "tiny-v2", "--wait", NAME).stdout
        shown = cloud.wait_status(NAME, "ACTIVE")
        assert v2_id in str(shown["image"]), (out, shown)
        assert shown["OS-EXT-SRV-ATTR:host"] == HOST
        assert shown["OS-EXT-SRV-ATTR:instance_name"] == domain  # the same libvirt domain
        assert shown["addresses"] == server["addresses"]

        lines = _wait_boots(cloud, 2).splitlines()
        assert lines.count(BANNER_V2) == 1, lines
        second_boot = lines[lines.index(BANNER_V2) :]
        assert f"hostname={NAME}" in second_boot, second_boot
        assert f"uuid={uuid}" in second_boot, second_boot
        assert BANNER not in second_boot, "the old image booted again"

        # a fresh overlay on the second image's cached base
        info = qemu_img_info(disk)
        backing = info.get("full-backing-filename") or info.get("backing-filename")
        assert backing == str((cloud.base_dir / v2_id).resolve()), info
        assert disk.stat().st_ino != old_inode

        events = cloud.json("server", "event", "list", NAME)
        assert [e["Action"] for e in events] == ["rebuild", "create"], events


def test_resize_bigger_and_confirm(cloud: Cloud) -> None:
    with step("resize bigger + confirm") as (uuid, domain):
        old_disk_size = qemu_img_info(_disk(uuid))["virtual-size"]
        cloud.run("server", "resize", "--flavor", "rz.big", "--wait", NAME, timeout=400)
        shown = cloud.wait_status(NAME, "VERIFY_RESIZE")
        assert "rz.big" in str(shown["flavor"])
        # the guest runs the new definition from the new, grown disk; the old one is kept
        assert _memory_mib(domain) == 256
        assert "<vcpu placement='static'>2</vcpu>" in virsh("dumpxml", domain, check=True).stdout
        assert qemu_img_info(_disk(uuid))["virtual-size"] == 2 * GiB > old_disk_size
        assert (INSTANCES_ROOT / HOST / f"{uuid}_resize" / "disk").exists()
        _wait_boots(cloud, 1)  # the new console log: it booted again
        assert 200 * 1024 < _guest_ram_kib(cloud) <= 256 * 1024  # the guest sees 256 MiB
        cloud.run("server", "resize", "confirm", NAME)
        cloud.wait_status(NAME, "ACTIVE")
        assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
        assert _memory_mib(domain) == 256


def test_resize_and_revert(cloud: Cloud) -> None:
    with step("resize + revert") as (uuid, domain):
        disk_before = qemu_img_info(_disk(uuid))
        cloud.run("server", "resize", "--flavor", "rz.huge", "--wait", NAME, timeout=400)
        cloud.wait_status(NAME, "VERIFY_RESIZE")
        assert _memory_mib(domain) == 512
        assert qemu_img_info(_disk(uuid))["virtual-size"] == 3 * GiB
        cloud.run("server", "resize", "revert", NAME)
        shown = cloud.wait_status(NAME, "ACTIVE")
        assert "rz.big" in str(shown["flavor"])
        assert _memory_mib(domain) == 256
        disk_after = qemu_img_info(_disk(uuid))
        assert disk_after["virtual-size"] == disk_before["virtual-size"]
        assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
        _wait_boots(cloud, 2)  # the old console log: its boot before the resize and this one
        assert 200 * 1024 < _guest_ram_kib(cloud) <= 256 * 1024


def test_shelve_offload_unshelve_boots_from_the_snapshot(cloud: Cloud) -> None:
    with step("shelve + unshelve") as (uuid, domain):
        cloud.run("server", "shelve", NAME)
        shelved = cloud.wait_status(NAME, "SHELVED_OFFLOADED", timeout=300)
        assert shelved["OS-EXT-SRV-ATTR:host"] is None, shelved
        snapshot = cloud.json("image", "show", f"{NAME}-shelved")
        assert snapshot["status"] == "active" and snapshot["visibility"] == "private", snapshot
        # nothing of it is left on the host: no libvirt domain (by uuid or name), no directory
        assert virsh("dominfo", uuid).returncode != 0, virsh("dominfo", uuid).stdout
        assert domain not in domain_names()
        assert not (cloud.instances / uuid).exists(), list((cloud.instances / uuid).iterdir())

        cloud.run("server", "unshelve", NAME)
        active = cloud.wait_status(NAME, "ACTIVE", timeout=300)
        assert active["OS-EXT-SRV-ATTR:host"] == HOST, active  # lv1 is the only host yet
        out = _wait_boots(cloud, 1)
        lines = out.splitlines()
        assert f"hostname={NAME}" in lines and f"uuid={uuid}" in lines, out
        # the new root disk is an overlay on the shelved snapshot, which Glance no longer has
        info = qemu_img_info(_disk(uuid))
        backing = info.get("full-backing-filename") or info.get("backing-filename") or ""
        assert backing.endswith(f"/_base/{snapshot['id']}"), info
        names = [i["Name"] for i in cloud.json("image", "list")]
        assert f"{NAME}-shelved" not in names, names
        # the unshelved guest keeps its libvirt domain name
        STATE["domain"] = active["OS-EXT-SRV-ATTR:instance_name"]


def test_cold_migration_between_two_agents(cloud: Cloud) -> None:
    with step("cold migration lv1 -> lv2") as (uuid, _domain):
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
        cloud.run("server", "migrate", "--wait", NAME, timeout=600)
        shown = cloud.wait_status(NAME, "VERIFY_RESIZE")
        assert shown["OS-EXT-SRV-ATTR:host"] == HOST2
        moved = qemu_img_info(_disk(uuid, HOST2))
        assert moved["virtual-size"] == 2 * GiB
        assert not moved.get("backing-filename")  # standalone: it came through the controller
        _wait_boots(cloud, 1)  # booted from the moved disk on lv2
        cloud.run("server", "resize", "confirm", NAME)
        cloud.wait_status(NAME, "ACTIVE")
        # the source host keeps nothing of it; the controller's copy is gone too
        assert not (INSTANCES_ROOT / HOST / uuid).exists()
        assert not (INSTANCES_ROOT / HOST / f"{uuid}_resize").exists()
        assert list((cloud.serve.data_dir / "migrations").iterdir()) == []
        listed = cloud.json("server", "migration", "list")
        assert {m["Status"] for m in listed} == {"confirmed", "reverted"}


def test_soft_delete_shuts_off_and_restore_runs_again(cloud: Cloud) -> None:
    """On lv2 now. The cloud runs with MININOVA_RECLAIM_INSTANCE_INTERVAL=3600, so a plain
    delete is a soft delete; the force delete at the end leaves nothing on either host."""
    with step("soft delete + restore + force delete") as (uuid, _domain):
        shown = cloud.wait_status(NAME, "ACTIVE")
        domain = shown["OS-EXT-SRV-ATTR:instance_name"]
        host = shown["OS-EXT-SRV-ATTR:host"]
        assert host == HOST2, shown
        # A booted guest answers the ACPI shutdown of the power-off at once.
        _wait_boots(cloud, 1)
        _assert_domstate(domain, "running")

        cloud.run("server", "delete", NAME)
        shown = cloud.wait_status(NAME, "SOFT_DELETED")
        assert shown["OS-EXT-STS:vm_state"] == "soft-delete"
        _assert_domstate(domain, "shut off")  # powered off, still defined
        assert _disk(uuid, host).exists()

        cloud.run("server", "restore", NAME)
        cloud.wait_status(NAME, "ACTIVE")
        _assert_domstate(domain, "running")

        cloud.run("server", "delete", "--force", NAME)
        cloud.wait(
            lambda: cloud.run("server", "show", uuid, check=False).returncode != 0,
            60,
            f"{NAME} to be deleted",
        )
        assert virsh("dominfo", domain).returncode != 0, f"{domain} still defined"
        assert virsh("dominfo", uuid).returncode != 0, f"a domain with uuid {uuid} still defined"
        # nothing of it on either host
        assert not (INSTANCES_ROOT / HOST2 / uuid).exists()
        assert not (INSTANCES_ROOT / HOST / uuid).exists()
