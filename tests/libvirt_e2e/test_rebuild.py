"""Rebuild on a real libvirt guest through the `openstack` CLI.

The second image is the tiny image with one change: its /init prints the banner
"mininova tiny guest v2" instead of "mininova tiny guest" (the initramfs on the image's FAT
boot partition is unpacked, edited and packed again with mtools and cpio). vm1 boots the
tiny image, is rebuilt to the second one, and its serial console then shows the second
boot: the new banner, the same hostname and uuid. The root disk is a fresh overlay on the
second image's cached base, in the same domain.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.libvirt_e2e.conftest import HOST, Cloud
from tests.libvirt_e2e.host import TINY_IMAGE, host_skip_reason, qemu_img_info

SKIP_REASON = host_skip_reason() or next(
    (
        f"{tool} not installed (mtools, cpio)"
        for tool in ("mcopy", "cpio")
        if not shutil.which(tool)
    ),
    None,
)
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

FLAVOR = "m1.micro"
BOOT_TIMEOUT = 180
BANNER = "mininova tiny guest"
BANNER_V2 = "mininova tiny guest v2"
PARTITION = "@@1M"  # the FAT boot partition starts at 1 MiB (build-tiny-image.sh)


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


def _wait_console(cloud: Cloud, name: str, needle: str, count: int = 1) -> str:
    out = ""

    def seen() -> bool:
        nonlocal out
        out = cloud.console(name)
        return sum(line.startswith(needle) for line in out.splitlines()) >= count

    try:
        cloud.wait(seen, BOOT_TIMEOUT, f"{needle!r} x{count} on the console of {name}", 1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- console (tail) ---\n{out[-2500:]}") from None
    return out


def _upload(cloud: Cloud, path: Path, name: str) -> str:
    image = cloud.json(
        "image",
        "create",
        "--file",
        str(path),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        name,
    )
    return str(image["id"])


def test_rebuild_to_another_image_shows_its_banner_and_the_same_hostname(
    cloud: Cloud, tmp_path: Path
) -> None:
    _upload(cloud, TINY_IMAGE, "tiny")
    v2_id = _upload(cloud, make_v2_image(tmp_path), "tiny-v2")

    server = cloud.json("server", "create", "--image", "tiny", "--flavor", FLAVOR, "--wait", "vm1")
    cloud.ids.add(server["id"])
    assert server["status"] == "ACTIVE", server
    domain = cloud.show("vm1")["OS-EXT-SRV-ATTR:instance_name"]
    first = _wait_console(cloud, "vm1", "boot done").splitlines()
    assert BANNER in first and BANNER_V2 not in first, first
    assert "hostname=vm1" in first, first
    disk = cloud.instances / server["id"] / "disk"
    old_inode = disk.stat().st_ino

    out = cloud.run("server", "rebuild", "--image", "tiny-v2", "--wait", "vm1").stdout
    shown = cloud.wait_status("vm1", "ACTIVE")
    assert v2_id in str(shown["image"]), (out, shown)
    assert shown["OS-EXT-SRV-ATTR:host"] == HOST
    assert shown["OS-EXT-SRV-ATTR:instance_name"] == domain  # the same libvirt domain
    assert shown["addresses"] == server["addresses"]

    lines = _wait_console(cloud, "vm1", "boot done", 2).splitlines()
    assert lines.count(BANNER_V2) == 1, lines
    second_boot = lines[lines.index(BANNER_V2) :]
    assert "hostname=vm1" in second_boot, second_boot
    assert f"uuid={server['id']}" in second_boot, second_boot
    assert BANNER not in second_boot, "the old image booted again"

    # a fresh overlay on the second image's cached base
    info = qemu_img_info(disk)
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    assert backing == str((cloud.base_dir / v2_id).resolve()), info
    assert disk.stat().st_ino != old_inode

    events = cloud.json("server", "event", "list", "vm1")
    assert [e["Action"] for e in events] == ["rebuild", "create"], events

    cloud.run("server", "delete", "--wait", "vm1")
