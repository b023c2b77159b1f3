"""Rebuild of a libvirt guest: a fresh root disk from the (possibly new) image, a new config
drive, the same domain (name, uuid, MAC, libvirt network and so its DHCP reservation).

The guest is shut down (ACPI, then forced, as `power_off`), the new overlay and config drive
are written next to the old ones and renamed over them, the domain is redefined from the new
spec and started unless the server was stopped. The serial console log is kept: libvirt
appends to it, so the second boot follows the first. A failure leaves the domain defined (the
conductor puts the server in ERROR; a rebuild or delete follows).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import libvirt

from mininova.virt.driver import GuestInfo, InstanceSpec
from mininova.virt.libvirt import guestxml

if TYPE_CHECKING:
    from mininova.virt.libvirt.driver import LibvirtDriver


async def rebuild_guest(driver: LibvirtDriver, spec: InstanceSpec, power_on: bool) -> GuestInfo:
    """Rebuild the existing domain of `spec.uuid` (GuestNotFound if there is none)."""
    uuid = spec.uuid
    inst_dir = driver._instance_dir(uuid)

    def current() -> tuple[str, list[tuple[str, str | None]]]:
        dom = driver._lookup(uuid)
        return dom.name(), guestxml.interface_macs(dom.XMLDesc(0))

    domain_name, macs = await driver._run(current)
    spec.domain_name = domain_name  # the same domain, whatever the controller computed
    if macs:
        spec.mac_address = macs[0][0]
    net_name = macs[0][1] if macs else None

    await driver.power_off(uuid)

    def drop_saved_state() -> None:
        dom = driver._lookup(uuid)
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)

    await driver._run(drop_saved_state)

    paths = driver._guest_paths(spec)
    new_disk = inst_dir / "disk.rebuild"
    new_drive = inst_dir / "disk.config.rebuild"
    try:
        await driver._write_root_and_drive(
            spec, new_disk, new_drive if paths.config_drive is not None else None
        )
    except BaseException:
        for path in (new_disk, new_drive):
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    # The old root disk goes now: the rebuilt guest never sees a byte of it.
    os.replace(new_disk, paths.disk)
    if paths.config_drive is not None:
        os.replace(new_drive, paths.config_drive)

    def redefine_and_start() -> None:
        network: str | None = None
        if net_name is not None:
            with contextlib.suppress(libvirt.libvirtError):
                net = driver._connection().networkLookupByName(net_name)
                if net.isActive():
                    driver._reserve_ip(net, spec.mac_address)  # kept from the first boot
            network = net_name
        xml = guestxml.build_domain_xml(spec, paths, virt_type=driver.virt_type, network=network)
        dom: Any = driver._connection().defineXML(xml)
        if power_on and not dom.isActive():
            dom.create()

    await driver._run(redefine_and_start)
    if power_on:
        return await driver._info_with_address(uuid)
    return await driver.get_info(uuid)
