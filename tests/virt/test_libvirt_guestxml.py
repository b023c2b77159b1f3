"""Domain XML builder: escaping, sizing, local-only VNC, serial log path, metadata."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from virtspec import NASTY

from mininova.virt.libvirt import guestxml


def _paths(tmp_path: Path, config_drive: bool = True) -> guestxml.GuestPaths:
    return guestxml.GuestPaths(
        disk=tmp_path / "disk",
        config_drive=tmp_path / "disk.config" if config_drive else None,
        console_log=tmp_path / "console.log",
    )


def test_domain_xml_escapes_and_sizes(spec, tmp_path):
    xml = guestxml.build_domain_xml(spec, _paths(tmp_path), virt_type="qemu", network="default")
    assert NASTY not in xml  # never raw
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "instance-0000002a"
    assert root.findtext("uuid") == spec.uuid
    assert root.find("memory").get("unit") == "MiB" and root.findtext("memory") == "128"
    assert root.findtext("vcpu") == "1"
    ns = {"m": guestxml.NS_URI}
    meta = root.find("metadata/m:instance", ns)
    assert meta.findtext("m:name", namespaces=ns) == NASTY
    assert meta.findtext("m:owner/m:project", namespaces=ns) == spec.project_id
    assert meta.findtext("m:owner/m:user", namespaces=ns) == spec.user_id
    assert root.findtext("on_poweroff") == "destroy"
    assert root.findtext("on_reboot") == "restart"
    assert root.findtext("on_crash") == "destroy"
    assert root.find("os/type").get("machine") == "pc"


def test_devices(spec, tmp_path):
    root = ET.fromstring(
        guestxml.build_domain_xml(spec, _paths(tmp_path), virt_type="kvm", network="default")
    )
    assert root.get("type") == "kvm"
    disk = root.find("devices/disk[@device='disk']")
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("target").get("bus") == "virtio"
    assert disk.find("source").get("file") == str(tmp_path / "disk")
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("readonly") is not None
    assert cdrom.find("source").get("file") == str(tmp_path / "disk.config")
    serial = root.find("devices/serial")
    assert serial.get("type") == "file"
    assert serial.find("source").get("path") == str(tmp_path / "console.log")
    assert root.find("devices/console/source").get("path") == str(tmp_path / "console.log")
    gfx = root.find("devices/graphics")
    assert gfx.get("type") == "vnc" and gfx.get("listen") == "127.0.0.1"
    assert gfx.find("listen").get("address") == "127.0.0.1"
    with_socket = guestxml.GuestPaths(**{**vars(_paths(tmp_path)), "vnc_socket": tmp_path / "v"})
    sock_root = ET.fromstring(
        guestxml.build_domain_xml(spec, with_socket, virt_type="kvm", network=None)
    )
    sock_gfx = sock_root.find("devices/graphics")
    assert sock_gfx.get("socket") == str(tmp_path / "v") and sock_gfx.get("port") is None
    assert guestxml.vnc_endpoint(ET.tostring(sock_root, encoding="unicode")).unix_path == (
        tmp_path / "v"
    )
    nic = root.find("devices/interface")
    assert nic.get("type") == "network" and nic.find("source").get("network") == "default"
    assert nic.find("mac").get("address") == spec.mac_address
    assert nic.find("model").get("type") == "virtio"


def test_user_networking_and_no_config_drive(spec, tmp_path):
    xml = guestxml.build_domain_xml(
        spec, _paths(tmp_path, config_drive=False), virt_type="qemu", network=None
    )
    root = ET.fromstring(xml)
    assert root.find("devices/interface").get("type") == "user"
    assert root.find("devices/disk[@device='cdrom']") is None
    assert guestxml.interface_macs(xml) == [(spec.mac_address, None)]


def test_vnc_endpoint_parsing():
    live = (
        "<domain><devices><graphics type='vnc' port='5901' autoport='yes' "
        "listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>"
        "</devices></domain>"
    )
    ep = guestxml.vnc_endpoint(live)
    assert (ep.host, ep.port, ep.unix_path) == ("127.0.0.1", 5901, None)
    sock = (
        "<domain><devices><graphics type='vnc'><listen type='socket' socket='/x/vnc.sock'/>"
        "</graphics></devices></domain>"
    )
    assert guestxml.vnc_endpoint(sock).unix_path == Path("/x/vnc.sock")
    assert guestxml.vnc_endpoint("<domain><devices/></domain>") is None


def test_flavor_from_metadata(spec):
    assert guestxml.flavor_from_metadata(guestxml.metadata_xml(spec)) == {
        "vcpus": 1,
        "ram_mb": 128,
        "disk_gb": 1,
    }
