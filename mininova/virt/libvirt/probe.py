"""Decide whether KVM really works here by booting throwaway firmware-only guests.

/dev/kvm existing is not enough: nested or sandboxed hosts expose it yet guests fail to start
(e.g. QEMU lacks permission) or crawl. Each probe is a transient domain with no disk whose
SeaBIOS prints to the serial port; it counts as booted once the firmware reports that it found
nothing to boot. KVM is chosen only if it boots and is not clearly slower than TCG.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
MARKER = b"No bootable device"


@dataclass
class ProbeResult:
    use_kvm: bool
    reason: str


def kvm_device_problem(path: str = "/dev/kvm") -> str | None:
    """Why QEMU (an unprivileged user under libvirt) cannot open /dev/kvm, or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if not st.st_mode & (stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH):
        return (
            f"{path} is mode {stat.S_IMODE(st.st_mode):o} (root only): QEMU running as an "
            "unprivileged user cannot use it, and libvirt re-probes QEMU on every call; fix "
            "with `chgrp kvm /dev/kvm && chmod 660 /dev/kvm` (scripts/host-setup.sh)"
        )
    return None


def probe_xml(domain_type: str, name: str, serial_path: Path) -> str:
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = name
    ET.SubElement(dom, "memory", unit="MiB").text = "32"
    ET.SubElement(dom, "vcpu").text = "1"
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "boot", dev="hd")
    ET.SubElement(os_el, "bios", useserial="yes")
    for tag in ("on_poweroff", "on_reboot", "on_crash"):
        ET.SubElement(dom, tag).text = "destroy"
    devices = ET.SubElement(dom, "devices")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(serial_path))
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(dom, encoding="unicode")


def boot_firmware(conn: Any, domain_type: str, workdir: Path, timeout: float) -> float:
    """Blocking: seconds until the firmware of a throwaway guest finishes; raises on failure."""
    import libvirt

    workdir.mkdir(parents=True, exist_ok=True)
    name = f"mininova-probe-{domain_type}-{uuid.uuid4().hex[:8]}"
    serial = workdir / f"{name}.log"
    start = time.monotonic()
    dom = conn.createXML(probe_xml(domain_type, name, serial), 0)
    try:
        while time.monotonic() - start < timeout:
            if serial.exists() and MARKER in serial.read_bytes():
                return time.monotonic() - start
            time.sleep(0.1)
        raise TimeoutError(f"{domain_type} guest firmware did not finish within {timeout:.0f} s")
    finally:
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass
        serial.unlink(missing_ok=True)


def probe_kvm(conn: Any, workdir: Path, timeout: float = 10.0) -> ProbeResult:
    """Blocking: should guests use KVM? Never raises."""
    problem = kvm_device_problem()
    if problem:
        return ProbeResult(False, problem)
    try:
        tcg = boot_firmware(conn, "qemu", workdir, timeout)
    except Exception as exc:  # noqa: BLE001 - a probe reports, it does not fail
        tcg = None
        LOG.warning("TCG probe guest failed: %s", exc)
    try:
        kvm = boot_firmware(conn, "kvm", workdir, timeout)
    except Exception as exc:  # noqa: BLE001
        return ProbeResult(False, f"KVM probe guest failed: {exc}")
    if tcg is not None and kvm > tcg * 1.5 + 0.5:
        return ProbeResult(
            False,
            f"KVM works but is slower than TCG here (firmware boot "
            f"{kvm:.1f} s under KVM vs {tcg:.1f} s under TCG; nested "
            "virtualisation?)",
        )
    tcg_s = f"{tcg:.1f} s" if tcg is not None else "failed"
    return ProbeResult(True, f"KVM probe guest booted firmware in {kvm:.1f} s (TCG {tcg_s})")
