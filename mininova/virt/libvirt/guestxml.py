"""Build and read libvirt domain XML with ElementTree, so every user string is escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from mininova.virt.driver import ConsoleEndpoint, InstanceSpec

NS_URI = "https://mininova.dev/xmlns/libvirt/instance/1"
NS_PREFIX = "mininova"
ET.register_namespace(NS_PREFIX, NS_URI)


def _q(tag: str) -> str:
    return f"{{{NS_URI}}}{tag}"


@dataclass
class GuestPaths:
    """Host files backing one guest."""

    disk: Path
    config_drive: Path | None
    console_log: Path
    vnc_socket: Path | None = None  # VNC on a unix socket (else TCP on 127.0.0.1)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def metadata_element(spec: InstanceSpec) -> ET.Element:
    """The `<mininova:instance>` element that marks a domain as ours."""
    root = ET.Element(_q("instance"))
    _sub(root, _q("uuid"), spec.uuid)
    _sub(root, _q("name"), spec.name)
    owner = _sub(root, _q("owner"))
    _sub(owner, _q("project"), spec.project_id)
    _sub(owner, _q("user"), spec.user_id)
    f = spec.flavor
    _sub(
        root,
        _q("flavor"),
        f.name,
        id=f.id,
        vcpus=str(f.vcpus),
        ram_mb=str(f.ram_mb),
        disk_gb=str(f.disk_gb),
    )
    _sub(root, _q("image"), spec.image.id)
    return root


def metadata_xml(spec: InstanceSpec) -> str:
    return ET.tostring(metadata_element(spec), encoding="unicode")


def build_domain_xml(
    spec: InstanceSpec, paths: GuestPaths, *, virt_type: str, network: str | None
) -> str:
    """Domain XML for `spec`; `network` is a libvirt network name or None for user-mode NAT."""
    dom = ET.Element("domain", type="kvm" if virt_type == "kvm" else "qemu")
    _sub(dom, "name", spec.domain_name)
    _sub(dom, "uuid", spec.uuid)
    meta = _sub(dom, "metadata")
    meta.append(metadata_element(spec))
    _sub(dom, "memory", str(spec.flavor.ram_mb), unit="MiB")
    _sub(dom, "vcpu", str(spec.flavor.vcpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    # No <cpu>: QEMU's default model. host-passthrough breaks on nested KVM (QEMU aborts
    # setting MSR 0x10a), and the KVM probe boots exactly this CPU configuration.
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    dev = _sub(dom, "devices")
    disk = _sub(dev, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2")
    _sub(disk, "source", file=str(paths.disk))
    _sub(disk, "target", dev="vda", bus="virtio")
    if paths.config_drive is not None:
        cd = _sub(dev, "disk", type="file", device="cdrom")
        _sub(cd, "driver", name="qemu", type="raw")
        _sub(cd, "source", file=str(paths.config_drive))
        _sub(cd, "target", dev="hda", bus="ide")
        _sub(cd, "readonly")

    if network:
        nic = _sub(dev, "interface", type="network")
        _sub(nic, "source", network=network)
    else:
        nic = _sub(dev, "interface", type="user")
    _sub(nic, "mac", address=spec.mac_address)
    _sub(nic, "model", type="virtio")

    log = str(paths.console_log)
    serial = _sub(dev, "serial", type="file")
    _sub(serial, "source", path=log, append="on")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="file")
    _sub(console, "source", path=log, append="on")
    _sub(console, "target", type="serial", port="0")

    if paths.vnc_socket is not None:
        # Only root and the QEMU user reach it (no TCP port other local users could open),
        # and an agent in another network namespace reaches it through the filesystem.
        gfx = _sub(dev, "graphics", type="vnc", socket=str(paths.vnc_socket))
        _sub(gfx, "listen", type="socket", socket=str(paths.vnc_socket))
    else:
        gfx = _sub(dev, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
        _sub(gfx, "listen", type="address", address="127.0.0.1")
    video = _sub(dev, "video")
    _sub(video, "model", type="vga")
    _sub(dev, "input", type="tablet", bus="usb")
    _sub(dev, "memballoon", model="virtio")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def vnc_endpoint(domain_xml: str) -> ConsoleEndpoint | None:
    """The VNC listener of a live domain, or None if it has none (or no port yet)."""
    root = ET.fromstring(domain_xml)
    gfx = root.find("./devices/graphics[@type='vnc']")
    if gfx is None:
        return None
    sock = gfx.get("socket") or next(
        (el.get("socket") for el in gfx.findall("listen[@type='socket']") if el.get("socket")), None
    )
    if sock:
        return ConsoleEndpoint(unix_path=Path(sock))
    port = int(gfx.get("port", "-1"))
    if port <= 0:
        return None
    return ConsoleEndpoint(host=gfx.get("listen") or "127.0.0.1", port=port)


def interface_macs(domain_xml: str) -> list[tuple[str, str | None]]:
    """(mac, libvirt network name or None) for each NIC of a domain."""
    root = ET.fromstring(domain_xml)
    out: list[tuple[str, str | None]] = []
    for nic in root.findall("./devices/interface"):
        mac = nic.find("mac")
        if mac is None or not mac.get("address"):
            continue
        src = nic.find("source")
        net = src.get("network") if nic.get("type") == "network" and src is not None else None
        out.append((mac.get("address", "").lower(), net))
    return out


def flavor_from_metadata(meta_xml: str) -> dict[str, int]:
    """vcpus/ram_mb/disk_gb recorded in our metadata element (zeros if missing)."""
    el = ET.fromstring(meta_xml).find(_q("flavor"))
    keys = ("vcpus", "ram_mb", "disk_gb")
    if el is None:
        return dict.fromkeys(keys, 0)
    return {k: int(el.get(k, "0") or 0) for k in keys}
