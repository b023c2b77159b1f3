"""Host checks and libvirt clean-up shared by the libvirt end-to-end tests and the bench.

Everything here talks to the system libvirtd (`qemu:///system`) through `virsh` or
libvirt-python; nothing imports mininova, so the bench can use it standalone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

URI = "qemu:///system"
REPO = Path(__file__).resolve().parents[2]
TINY_IMAGE = Path(os.environ.get("MININOVA_TINY_IMAGE") or REPO / "examples/images/out/tiny.qcow2")
BUILD_SCRIPT = "examples/images/build-tiny-image.sh"


def host_skip_reason() -> str | None:
    """Why the libvirt end-to-end tests cannot run on this host (None when they can)."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python not installed (pip install -e '.[libvirt]')"
    for tool in ("virsh", "qemu-img"):
        if not shutil.which(tool):
            return f"{tool} not installed on this host (run scripts/host-setup.sh)"
    try:
        proc = subprocess.run(
            ["virsh", "-c", URI, "version"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return f"libvirtd not reachable at {URI}: virsh version timed out"
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        return (
            f"libvirtd not reachable at {URI} (run scripts/host-setup.sh): "
            f"{detail[-1] if detail else 'virsh version failed'}"
        )
    if not TINY_IMAGE.is_file():
        return f"tiny image not built: run {BUILD_SCRIPT} ({TINY_IMAGE} missing)"
    return None


def virsh(*args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"virsh {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc


def domstate(name: str) -> str:
    """`virsh domstate` first line ("running", "shut off", "paused"...), "" if no domain."""
    proc = virsh("domstate", name)
    return proc.stdout.strip().splitlines()[0].strip() if proc.returncode == 0 else ""


def domain_names() -> list[str]:
    """Names of all domains (running or not), as `virsh list --all --name` prints them."""
    proc = virsh("list", "--all", "--name", check=True)
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _release_dhcp_hosts(conn: object, xml: str) -> None:
    """Drop static DHCP host entries the mininova driver reserved for this domain's MACs."""
    import libvirt

    root = ET.fromstring(xml)
    for nic in root.findall("./devices/interface[@type='network']"):
        mac_el, src = nic.find("mac"), nic.find("source")
        if mac_el is None or src is None or not src.get("network"):
            continue
        mac = (mac_el.get("address") or "").lower()
        with contextlib.suppress(libvirt.libvirtError):
            net = conn.networkLookupByName(src.get("network"))  # type: ignore[attr-defined]
            net_root = ET.fromstring(net.XMLDesc(0))
            for host in net_root.findall("./ip/dhcp/host"):
                if (host.get("mac") or "").lower() == mac:
                    entry = ET.tostring(host, encoding="unicode")
                    net.update(
                        libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                        libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                        -1,
                        entry,
                        libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
                        | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG,
                    )


def _has_disk_under(xml: str, directory: Path) -> bool:
    sources = [s.get("file") or "" for s in ET.fromstring(xml).findall("./devices/disk/source")]
    return any(Path(f).is_relative_to(directory) for f in sources if f)


def purge_domains(
    uuids: Iterable[str] = (),
    names: Iterable[str] = (),
    name_prefix: str = "instance-",
    disks_under: Path | None = None,
) -> list[str]:
    """Destroy and undefine the domains with these uuids (and a name starting with
    `name_prefix`), exactly these names, or (`disks_under`) a disk file in that directory,
    with their managed-save images and DHCP reservations. Returns the names removed. Never
    raises for a domain that is gone."""
    import libvirt

    wanted_uuids = {u.lower() for u in uuids}
    wanted_names = set(names)
    removed: list[str] = []
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are handled here
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError:
        return removed
    flags = 0
    for flag in (
        "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE",
        "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
        "VIR_DOMAIN_UNDEFINE_NVRAM",
    ):
        flags |= getattr(libvirt, flag, 0)
    try:
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError, ET.ParseError):
                name = dom.name()
                xml = dom.XMLDesc(0)
                ours = (
                    name in wanted_names
                    or (name.startswith(name_prefix) and dom.UUIDString().lower() in wanted_uuids)
                    or (disks_under is not None and _has_disk_under(xml, disks_under))
                )
                if not ours:
                    continue
                persistent = dom.isPersistent()
                if dom.isActive():
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.destroy()
                if persistent:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefineFlags(flags)
                _release_dhcp_hosts(conn, xml)
                removed.append(name)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    return removed


def qemu_img_info(path: Path) -> dict:
    import json

    proc = subprocess.run(
        ["qemu-img", "info", "--force-share", "--output=json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise AssertionError(f"qemu-img info {path} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return f"<{path}: no log>"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])
