"""Resize and cold migration for the libvirt driver (the thin methods are in driver.py).

As Nova's libvirt driver does, `resize_prepare` powers the guest off (ACPI, then hard),
undefines the domain and renames its directory `<uuid>/` to `<uuid>_resize/` with the
inactive domain XML saved in it as `domain.xml`: nothing of it is a guest of this host any
more (two agents may share one libvirtd, and a domain uuid is defined once per libvirtd), but
everything is kept until confirm. `finish_resize` builds `<uuid>/` again: the root disk is a
copy of the kept qcow2 overlay (same host: its backing file is this host's `_base` image) or
the standalone qcow2 that came through the controller (another host), grown with
`qemu-img resize` to the new flavor's size; a fresh config drive; the domain defined with the
new vCPU/RAM and started when it ran before. `confirm_resize` deletes `<uuid>_resize/`;
`finish_revert_resize` renames it back and redefines the saved XML (old flavor, old disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from mininova.virt.driver import RUNNING, DriverError, GuestInfo, GuestNotFound, InstanceSpec
from mininova.virt.libvirt import guestxml
from mininova.virt.libvirt.configdrive import build_config_drive
from mininova.virt.libvirt.images import GiB, inspect_image, qemu_img_info, run

if TYPE_CHECKING:
    from mininova.virt.libvirt.driver import LibvirtDriver

KEPT_SUFFIX = "_resize"
SAVED_XML = "domain.xml"


def kept_dir(drv: LibvirtDriver, uuid: str) -> Path:
    inst_dir = drv._instance_dir(uuid)
    return inst_dir.with_name(inst_dir.name + KEPT_SUFFIX)


async def prepare(drv: LibvirtDriver, uuid: str) -> int:
    """Power off, undefine, keep `<uuid>_resize/`; the power state it had."""
    before = (await drv.get_info(uuid)).power_state
    await drv.power_off(uuid)
    inst_dir, kept = drv._instance_dir(uuid), kept_dir(drv, uuid)

    def set_aside() -> None:
        dom = drv._lookup(uuid)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        if dom.isActive():
            drv._force_off(dom)
        dom.undefineFlags(drv_undefine_flags())
        shutil.rmtree(kept, ignore_errors=True)
        os.rename(inst_dir, kept)
        saved = kept / SAVED_XML
        saved.write_text(xml)
        os.chmod(saved, 0o600)

    await drv._run(set_aside)
    return before


def drv_undefine_flags() -> int:
    from mininova.virt.libvirt.driver import _UNDEFINE_FLAGS

    return _UNDEFINE_FLAGS


async def export_disk(drv: LibvirtDriver, uuid: str, dest: Path) -> None:
    """The kept root disk flattened with its base image into one standalone qcow2: the
    destination needs neither the base image nor anything else of this host."""
    disk = kept_dir(drv, uuid) / "disk"
    if not disk.exists():
        raise GuestNotFound(f"no disk of {uuid} kept aside on this host")
    await run(
        "qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", str(disk), str(dest), timeout=3600
    )


async def _grow(disk: Path, disk_gb: int) -> None:
    virtual = int((await qemu_img_info(disk)).get("virtual-size", 0))
    if disk_gb * GiB > virtual:
        await run("qemu-img", "resize", "-q", "-f", "qcow2", str(disk), f"{disk_gb}G")


async def finish(
    drv: LibvirtDriver, spec: InstanceSpec, power_on: bool, moved: Path | None
) -> GuestInfo:
    """Build the guest with the new flavor from the kept disk (same host) or a moved one."""
    inst_dir, kept = drv._instance_dir(spec.uuid), kept_dir(drv, spec.uuid)
    paths = drv._guest_paths(spec)
    reserved: list[Any] = []
    try:
        await asyncio.to_thread(drv._guest_dir, inst_dir, 0o770)
        if moved is not None:
            fmt, _size = await inspect_image(moved)  # standalone, no backing or data file
            if fmt != "qcow2":
                raise DriverError(f"the moved disk is {fmt}, not qcow2")
            await asyncio.to_thread(shutil.move, moved, paths.disk)
        elif (kept / "disk").exists():
            await asyncio.to_thread(shutil.copyfile, kept / "disk", paths.disk)
        else:
            raise DriverError(f"no disk of {spec.uuid} kept aside on this host")
        await _grow(paths.disk, spec.flavor.disk_gb)
        await asyncio.to_thread(drv._share_with_qemu, paths.disk, 0o600, True)
        if paths.config_drive is not None:
            await asyncio.to_thread(build_config_drive, spec, paths.config_drive)
            await asyncio.to_thread(drv._share_with_qemu, paths.config_drive, 0o640)

        def define() -> None:
            net = drv._usable_network()
            if net is not None:
                drv._reserve_ip(net, spec.mac_address)
                reserved.append(net)
            xml = guestxml.build_domain_xml(
                spec, paths, virt_type=drv.virt_type, network=drv.network if net else None
            )
            dom = drv._connection().defineXML(xml)
            if power_on:
                try:
                    dom.create()
                except libvirt.libvirtError:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefineFlags(drv_undefine_flags())
                    raise

        await drv._run(define)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, inst_dir, True)
        raise
    return await drv.get_info(spec.uuid)


async def confirm(drv: LibvirtDriver, uuid: str) -> None:
    await asyncio.to_thread(shutil.rmtree, kept_dir(drv, uuid), True)


async def revert(drv: LibvirtDriver, uuid: str, power_on: bool) -> GuestInfo | None:
    """The kept guest back: its directory, its saved definition (old flavor, old disk)."""
    inst_dir, kept = drv._instance_dir(uuid), kept_dir(drv, uuid)
    if not kept.exists():
        with contextlib.suppress(GuestNotFound):
            return await drv.get_info(uuid)
        return None

    def restore() -> None:
        with contextlib.suppress(GuestNotFound):
            drv._lookup(uuid)
            raise DriverError(f"instance {uuid} is still defined here; destroy it first")
        shutil.rmtree(inst_dir, ignore_errors=True)
        xml = (kept / SAVED_XML).read_text()
        os.rename(kept, inst_dir)
        (inst_dir / SAVED_XML).unlink()
        for mac, net_name in guestxml.interface_macs(xml):
            if net_name:
                with contextlib.suppress(libvirt.libvirtError):
                    drv._reserve_ip(drv._connection().networkLookupByName(net_name), mac)
        dom = drv._connection().defineXML(xml)
        if power_on:
            dom.create()

    await drv._run(restore)
    info = await drv.get_info(uuid)
    if power_on and info.power_state != RUNNING:
        raise DriverError(f"instance {uuid} did not start after the revert")
    return info
