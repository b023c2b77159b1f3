"""The whole stack on a real libvirtd: `openstack` CLI -> mininova serve -> libvirt agent -> QEMU.

The tests run in file order and share one cloud (and its guests) per module:
vm1 boots and walks the power states, a pair shares one cached base image, a guest powers
itself off, the agent is killed with guests running, the noVNC console is driven in
Chromium, a corrupted image fails cleanly, and everything is deleted.

The tiny guest (examples/images) needs m1.micro: with m1.nano's 64 MiB SYSLINUX cannot load
the Debian kernel + initramfs ("Booting kernel failed: Invalid argument").
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.libvirt_e2e.conftest import HOST, VIRT_TYPE, Cloud, make_ed25519_public_key
from tests.libvirt_e2e.host import (
    TINY_IMAGE,
    domain_names,
    domstate,
    host_skip_reason,
    qemu_img_info,
    virsh,
)

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

FLAVOR = "m1.micro"
BOOT_TIMEOUT = 180  # first identity lines on the serial console, TCG on a busy host


def _count(text: str, needle: str) -> int:
    return text.count(needle)


def _wait_console(
    cloud: Cloud, name: str, needle: str, count: int = 1, timeout: float = BOOT_TIMEOUT
) -> str:
    """Poll `openstack console log show` until `needle` appears `count` times."""
    out = ""

    def seen() -> bool:
        nonlocal out
        out = cloud.console(name)
        return _count(out, needle) >= count

    try:
        cloud.wait(seen, timeout, f"{needle!r} x{count} on the console of {name}", interval=1)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- console log of {name} (tail) ---\n" + "\n".join(out.splitlines()[-25:])
        ) from None
    return out


def _domain(cloud: Cloud, name: str) -> str:
    server = cloud.show(name)
    domain = server["OS-EXT-SRV-ATTR:instance_name"]
    assert re.fullmatch(r"instance-[0-9a-f]{8}", domain or ""), server
    return domain


def _assert_domstate(cloud: Cloud, domain: str, expected: str) -> None:
    state = domstate(domain)
    assert state == expected, (
        f"virsh domstate {domain}: {state!r}, wanted {expected!r}{cloud.logs()}"
    )


# -- 1, 2: boot with a keypair, identity on the serial console --------------------------------


def test_boot_and_console_identity(cloud: Cloud) -> None:
    image = cloud.json(
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
    cloud.facts["image_id"] = image["id"]
    key_file = cloud.root / "k1.pub"
    _key, local_fp = make_ed25519_public_key(key_file)
    cloud.run("keypair", "create", "--public-key", str(key_file), "k1")
    fingerprint = cloud.json("keypair", "show", "k1")["fingerprint"]
    assert fingerprint == local_fp

    server = cloud.json(
        "server",
        "create",
        "--image",
        "tiny",
        "--flavor",
        FLAVOR,
        "--key-name",
        "k1",
        "--wait",
        "vm1",
    )
    cloud.ids.add(server["id"])
    assert server["status"] == "ACTIVE", server
    assert server["OS-EXT-SRV-ATTR:host"] == HOST
    cloud.facts["vm1"] = server["id"]

    out = _wait_console(cloud, "vm1", "boot done")
    lines = set(out.splitlines())
    assert "hostname=vm1" in lines, out
    assert f"uuid={server['id']}" in lines, out
    assert f"ssh_key_fingerprint={fingerprint}" in lines, out
    # The guest's files are where the driver documents them.
    inst = cloud.instances / server["id"]
    assert {p.name for p in inst.iterdir()} >= {"disk", "disk.config", "console.log"}


def test_mininova_ssh_reaches_the_guest_through_its_agent(cloud: Cloud) -> None:
    """`mininova ssh` with the keypair's private key runs a command in vm1 (Dropbear in the
    tiny image, the config drive's key), the TCP stream going through the agent's link."""
    import shutil
    import sys

    private_key = cloud.root / "k1"  # ssh-keygen wrote it next to k1.pub
    if not private_key.exists():
        pytest.skip("ssh-keygen not installed on this host: no private key for k1")
    if shutil.which("ssh") is None:
        pytest.skip("ssh client not installed on this host (openssh-client)")
    _wait_console(cloud, "vm1", "sshd: listening on 22")
    cloud.run("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
              "default")  # fmt: skip
    command = [
        sys.executable, "-m", "mininova.cli", "ssh", "root@vm1",
        "-i", str(private_key), "-o", "BatchMode=yes",
        "cat /etc/hostname; echo through-the-agent",
    ]  # fmt: skip
    proc = subprocess.run(command, env=cloud.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"mininova ssh failed: {proc.stderr}{cloud.logs()}"
    assert proc.stdout.split() == ["vm1", "through-the-agent"], proc.stdout
    # A key the guest does not hold is refused by the guest's sshd, not by mininova.
    other = cloud.root / "other.pub"
    make_ed25519_public_key(other)
    command[command.index(str(private_key))] = str(other.with_suffix(""))
    refused = subprocess.run(command, env=cloud.env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "Permission denied (publickey)" in refused.stderr, refused.stderr


# -- 3: power actions, checked against libvirt ------------------------------------------------


def test_power_actions_match_libvirt(cloud: Cloud) -> None:
    domain = _domain(cloud, "vm1")
    _assert_domstate(cloud, domain, "running")

    cloud.run("server", "stop", "vm1")
    cloud.wait_status("vm1", "SHUTOFF")
    _assert_domstate(cloud, domain, "shut off")

    boots = _count(cloud.console("vm1"), "boot done")
    cloud.run("server", "start", "vm1")
    cloud.wait_status("vm1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")
    # A soft reboot is an ACPI request: wait until the guest is up and listening for it.
    out = _wait_console(cloud, "vm1", "boot done", boots + 1)

    pressed = _count(out, "power button pressed")
    cloud.run("server", "reboot", "vm1")
    cloud.wait_status("vm1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")
    # The guest saw the ACPI button (not a reset after a timeout) and booted again.
    _wait_console(cloud, "vm1", "power button pressed", pressed + 1)
    _wait_console(cloud, "vm1", "boot done", boots + 2)

    cloud.run("server", "reboot", "--hard", "vm1")
    cloud.wait_status("vm1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")
    _wait_console(cloud, "vm1", "boot done", boots + 3)

    cloud.run("server", "pause", "vm1")
    cloud.wait_status("vm1", "PAUSED")
    _assert_domstate(cloud, domain, "paused")
    cloud.run("server", "unpause", "vm1")
    cloud.wait_status("vm1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")

    cloud.run("server", "suspend", "vm1")
    cloud.wait_status("vm1", "SUSPENDED")
    _assert_domstate(cloud, domain, "shut off")
    info = virsh("dominfo", domain, check=True).stdout
    assert re.search(r"Managed save:\s+yes", info), info
    cloud.run("server", "resume", "vm1")
    shown = cloud.wait_status("vm1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")
    assert shown["OS-EXT-STS:power_state"] in (1, "Running"), shown


# -- 4: the hypervisor is QEMU (TCG) with the host's real resources ---------------------------


def test_hypervisor_reports_qemu_tcg(cloud: Cloud) -> None:
    nodeinfo = virsh("nodeinfo", check=True).stdout
    cpus = int(re.search(r"CPU\(s\):\s+(\d+)", nodeinfo).group(1))  # type: ignore[union-attr]
    mem_kib = int(re.search(r"Memory size:\s+(\d+) KiB", nodeinfo).group(1))  # type: ignore[union-attr]

    # Up to 2.87 the hypervisor carries vcpus/memory_mb (2.88 dropped them).
    proc = cloud.run(
        "--os-compute-api-version", "2.87", "hypervisor", "show", HOST, "-f", "json", check=False
    )
    assert proc.returncode == 0, f"hypervisor show failed: {proc.stderr}{cloud.logs()}"
    hv = json.loads(proc.stdout)
    values = (
        hv["hypervisor_type"],
        hv["vcpus"],
        hv["memory_mb"],
        hv["vcpus_used"],
        hv["memory_mb_used"],
    )
    hv_type, vcpus, memory_mb, vcpus_used, memory_used = values
    assert hv_type == "QEMU", hv
    assert vcpus == cpus, (hv, nodeinfo)
    assert memory_mb == mem_kib // 1024, (hv, nodeinfo)
    assert vcpus_used >= 1 and memory_used >= 128, hv  # vm1 (m1.micro) is running
    log = cloud.agent_log()
    assert "libvirt driver using QEMU/TCG" in log, cloud.logs()
    if VIRT_TYPE == "auto":  # the KVM probe ran and chose TCG
        assert "virt_type=qemu configured" not in log


# -- 6: two guests of one image share one cached base -----------------------------------------


def test_two_servers_share_one_cached_base(cloud: Cloud) -> None:
    image_id = cloud.facts["image_id"]
    base = cloud.base_dir / image_id
    before = base.stat()
    created = cloud.json(
        "server",
        "create",
        "--image",
        "tiny",
        "--flavor",
        FLAVOR,
        "--min",
        "2",
        "--max",
        "2",
        "--wait",
        "pair",
    )
    ids = {s["ID"] for s in cloud.json("server", "list") if s["Name"].startswith("pair-")}
    cloud.ids |= ids
    assert len(ids) == 2, (created, ids)
    for name in ("pair-1", "pair-2"):
        cloud.wait_status(name, "ACTIVE")

    assert sorted(os.listdir(cloud.base_dir)) == [image_id], "one cached copy, no partials"
    after = base.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    ), "the base was fetched again"
    downloads = re.findall(rf"downloading image {image_id}\b", cloud.agent_log())
    assert len(downloads) == 1, (
        f"{len(downloads)} downloads of {image_id} for 3 boots{cloud.logs()}"
    )

    overlays = [cloud.instances / uuid / "disk" for uuid in sorted(ids | {cloud.facts["vm1"]})]
    for disk in overlays:
        info = qemu_img_info(disk)
        assert info["format"] == "qcow2", info
        backing = info.get("full-backing-filename") or info.get("backing-filename")
        assert backing == str(base.resolve()), info
    assert len({d.stat().st_ino for d in overlays}) == len(overlays)


# -- 7: a guest that powers itself off reads SHUTOFF ------------------------------------------


def test_guest_poweroff_is_synced_to_shutoff(cloud: Cloud, tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    user_data.write_text("#!/bin/sh\npoweroff-after-boot\n")
    server = cloud.json(
        "server",
        "create",
        "--image",
        "tiny",
        "--flavor",
        FLAVOR,
        "--user-data",
        str(user_data),
        "selfoff",
    )
    cloud.ids.add(server["id"])
    # No --wait: the guest may already be off by the time a poll would see ACTIVE.
    shown = cloud.wait_status("selfoff", "SHUTOFF", timeout=BOOT_TIMEOUT)
    assert shown["OS-SRV-USG:launched_at"], "selfoff never became ACTIVE"
    assert shown["OS-EXT-STS:vm_state"] == "stopped", shown
    out = cloud.console("selfoff")
    assert "powering off" in out and "hostname=selfoff" in out, out
    _assert_domstate(cloud, _domain(cloud, "selfoff"), "shut off")


# -- 8: kill -9 the agent with guests running -------------------------------------------------


def _server_table(cloud: Cloud) -> list[tuple[str, str, str]]:
    return sorted((s["ID"], s["Name"], s["Status"]) for s in cloud.json("server", "list"))


def test_agent_kill9_readopts_guests(cloud: Cloud) -> None:
    before = _server_table(cloud)
    assert {(n, st) for _, n, st in before} == {
        ("vm1", "ACTIVE"),
        ("pair-1", "ACTIVE"),
        ("pair-2", "ACTIVE"),
        ("selfoff", "SHUTOFF"),
    }, before
    domains = {name: _domain(cloud, name) for _, name, _ in before}

    cloud.agent.stop(signal.SIGKILL)
    for name in ("vm1", "pair-1", "pair-2"):  # the guests outlive their agent
        _assert_domstate(cloud, domains[name], "running")
    offset = len(cloud.agent_log())
    cloud.agent.start()
    cloud.wait_agent_connected(after=offset)

    assert _server_table(cloud) == before
    names = domain_names()
    counts = Counter(names)
    for name, domain in domains.items():
        assert counts[domain] == 1, f"{domain} ({name}) listed {counts[domain]}x: {names}"
    # Actions still reach the re-adopted guests.
    cloud.run("server", "stop", "pair-1")
    cloud.wait_status("pair-1", "SHUTOFF")
    _assert_domstate(cloud, domains["pair-1"], "shut off")
    cloud.run("server", "start", "pair-1")
    cloud.wait_status("pair-1", "ACTIVE")
    _assert_domstate(cloud, domains["pair-1"], "running")
    # Several heartbeats have passed since the reconnect: nobody was declared lost.
    assert _server_table(cloud) == before
    ids = [i for i, _, _ in _server_table(cloud)]
    assert len(ids) == len(set(ids))


# -- 10: the noVNC console of the real guest in Chromium --------------------------------------


@pytest.mark.browser
async def test_browser_console_on_real_guest(cloud: Cloud) -> None:
    from tests.console.browser import browser_skip_reason, console_page

    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    url = cloud.json("console", "url", "show", "--novnc", "vm1")["url"]
    async with console_page(url) as console:
        screen = await console.wait_connected(timeout=30)
        pixels = Counter(screen.rgba[i : i + 4] for i in range(0, len(screen.rgba), 4))
        background, bg_count = pixels.most_common(1)[0]
        text_fraction = 1 - bg_count / (screen.width * screen.height)
        print(f"console {screen.width}x{screen.height}: {text_fraction:.2%} non-background")
        # The tty1 text (kernel messages, identity lines, the shell prompt) is on screen.
        assert text_fraction > 0.005, (
            f"console looks blank: {text_fraction:.4f} non-background pixels; "
            f"log={console.console_log}"
        )
        await console.page.locator("#screen canvas").click()
        await console.page.keyboard.type("echo hello-from-novnc", delay=30)
        await console.page.keyboard.press("Enter")
        after = await console.wait_screen_change(screen, timeout=30, min_pixels=200)
        await console.page.screenshot(path=str(cloud.root / "console.png"))
        changed = after.differing_pixels(screen)
        print(f"typing changed {changed} pixels")
        assert await console.state() == "connected"


# -- 9: a corrupted image fails the build cleanly ---------------------------------------------


def test_corrupted_image_fails_cleanly(cloud: Cloud) -> None:
    src = cloud.root / "broken.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "64M"], check=True)
    image = cloud.json(
        "image",
        "create",
        "--file",
        str(src),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "broken",
    )
    stored = cloud.serve.data_dir / "images" / image["id"]
    data = bytearray(stored.read_bytes())
    assert len(data) == src.stat().st_size
    data[-1] ^= 0xFF  # same size, different bytes: only the checksum can tell
    stored.write_bytes(bytes(data))

    proc = cloud.run(
        "server", "create", "--image", "broken", "--flavor", FLAVOR, "--wait", "bad1", check=False
    )
    assert proc.returncode != 0, proc.stdout
    shown = cloud.wait_status("bad1", "ERROR")
    cloud.ids.add(shown["id"])
    assert "checksum mismatch" in cloud.agent_log(), cloud.logs()
    leftovers = [p.name for p in cloud.instances.iterdir() if p.name == shown["id"]]
    leftovers += [p.name for p in cloud.base_dir.iterdir() if image["id"] in p.name]
    assert not leftovers, f"left on the agent's disk: {leftovers}"
    fault = shown.get("fault") or {}
    assert "checksum" in (fault.get("message") or "").lower(), (
        f"fault does not name the cause: {fault}{cloud.logs()}"
    )


# -- snapshot: createImage of a running guest gives a bootable image --------------------------


def test_snapshot_boots_a_new_guest(cloud: Cloud) -> None:
    image = cloud.json("server", "image", "create", "--name", "vm1-snap", "--wait", "vm1")
    assert image["status"] == "active", image
    assert cloud.show("vm1")["status"] == "ACTIVE"  # paused for the copy, running again
    server = cloud.json(
        "server", "create", "--image", "vm1-snap", "--flavor", FLAVOR, "--wait", "fromsnap"
    )
    cloud.ids.add(server["id"])
    out = _wait_console(cloud, "fromsnap", "boot done")
    assert "hostname=fromsnap" in out.splitlines(), out
    cloud.run("server", "delete", "--wait", "fromsnap")


# -- 5: delete removes the domain and the instance directory ---------------------------------


def test_delete_removes_domain_and_files(cloud: Cloud) -> None:
    targets = {
        name: (cloud.show(name)["id"], _domain(cloud, name))
        for name in ("vm1", "pair-1", "pair-2", "selfoff")
    }
    for name, (uuid, _dom) in targets.items():
        assert (cloud.instances / uuid / "console.log").exists(), name
    cloud.run("server", "delete", "--wait", *targets)
    for name, (uuid, domain) in targets.items():
        proc = virsh("dominfo", domain)
        assert proc.returncode != 0, f"{domain} ({name}) still defined: {proc.stdout}"
        assert not (cloud.instances / uuid).exists(), (
            f"{cloud.instances / uuid} left: {os.listdir(cloud.instances / uuid)}"
        )
    remaining = {s["Name"] for s in cloud.json("server", "list")}
    assert remaining <= {"bad1"}, remaining
    cloud.run("server", "delete", "--wait", "bad1", check=False)
    left = [
        p
        for p in cloud.instances.iterdir()
        if p.name != "_base" and (not p.name.startswith("_") or any(p.iterdir()))
    ]  # _probe: KVM probe, empty
    assert not left, f"left in {cloud.instances}: {left}"
