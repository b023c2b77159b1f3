"""LibvirtDriver: nova-compute's libvirt driver in miniature (QEMU/KVM, TCG fallback).

Every libvirt-python call runs in a worker thread; qemu-img runs as a subprocess. Guests are
persistent libvirt domains (defineXML + create), so they outlive the agent process and are
re-adopted through `list_guests`, which recognises them by their mininova metadata element.

Files of one guest live in `<instances_path>/<uuid>/`: `disk` (qcow2 overlay on
`_base/<image id>`), `disk.config` (config drive) and `console.log` (serial console). QEMU runs
as an unprivileged user (libvirt-qemu on Debian): as root the agent makes the instances
directories 0750 (0770 for a guest's own, where QEMU creates its VNC socket) with the QEMU
user's group, base images and config drives 0640 with that
group and the overlay 0600 owned by the QEMU user; nothing is readable by other users. libvirt
hands QEMU an already-open descriptor for the console log (0600, root). At start the agent
checks that the QEMU user can traverse `instances_path` and refuses to run otherwise.

Addresses: on a libvirt network each guest gets a static DHCP host entry (MAC -> IP) reserved
at spawn and removed at destroy, so its address is known at once, before the guest has asked
for a lease; with user-mode networking (no usable libvirt network) every guest is 10.0.2.15.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import threading
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from mininova.paths import INSTANCES_ROOT, QemuIdentity, qemu_access_problem, qemu_identity
from mininova.virt import console_log
from mininova.virt.driver import (
    CRASHED,
    NOSTATE,
    PAUSED,
    RUNNING,
    SHUTDOWN,
    SUSPENDED,
    ComputeDriver,
    ConsoleEndpoint,
    DriverError,
    GuestInfo,
    GuestNotFound,
    HostResources,
    InstanceSpec,
)
from mininova.virt.libvirt import guestxml, resize
from mininova.virt.libvirt.configdrive import build_config_drive
from mininova.virt.libvirt.events import EventThread
from mininova.virt.libvirt.firewall import Firewall
from mininova.virt.libvirt.images import ImageCache, create_overlay, inspect_image, run
from mininova.virt.libvirt.probe import kvm_device_problem, probe_kvm
from mininova.virt.libvirt.rebuild import rebuild_guest

LOG = logging.getLogger(__name__)
# Written into a guest's directory (with its MAC) when a spawn starts and removed when it
# returns: a directory that still has it when the agent starts holds a spawn the agent did
# not finish (it was killed), which the controller has failed meanwhile.
SPAWN_MARKER = ".spawning"
T = TypeVar("T")
USER_NET_ADDR = "10.0.2.15"
GiB = 1 << 30

_STATE_MAP = {
    libvirt.VIR_DOMAIN_NOSTATE: NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: SUSPENDED,
}
_UNDEFINE_FLAGS = 0
for _flag in (
    "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE",
    "VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA",
    "VIR_DOMAIN_UNDEFINE_NVRAM",
    "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA",
):
    _UNDEFINE_FLAGS |= getattr(libvirt, _flag, 0)
_NET_LIVE_CONFIG = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG


def event_power_state(event: int, detail: int) -> int | None:
    """Nova power state for a libvirt lifecycle event, or None to ignore it."""
    if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
        return RUNNING
    if event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED:
        return PAUSED
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED:
            return SUSPENDED
        if detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED:
            return CRASHED
        return SHUTDOWN
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED:
        return CRASHED
    if event == libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED:
        return SUSPENDED
    return None


def _check_uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise GuestNotFound(f"Invalid instance uuid {value!r}") from None


class LibvirtDriver(ComputeDriver):
    """Compute driver for QEMU/KVM through a single libvirt connection."""

    name = "libvirt"

    def __init__(
        self,
        uri: str = "qemu:///system",
        virt_type: str = "auto",
        instances_path: Path = Path("/var/lib/mininova/instances"),
        network: str = "default",
        *,
        sync_interval: float = 60.0,
        shutdown_timeout: float = 10.0,
        reboot_timeout: float = 30.0,
        lease_wait: float = 20.0,
        probe_timeout: float = 10.0,
        network_record: Path | None = None,
    ) -> None:
        super().__init__()
        if virt_type not in ("auto", "kvm", "qemu"):
            raise ValueError(f"virt_type must be auto, kvm or qemu, not {virt_type!r}")
        self.uri = uri
        self.requested_virt_type = virt_type
        self.virt_type = "qemu" if virt_type == "auto" else virt_type
        self.virt_type_reason = ""
        self.instances_path = Path(instances_path)
        # What the firewall added (addresses, rules), so a restarted agent removes stale ones.
        self.network_record = network_record or self.instances_path.with_name(
            self.instances_path.name + ".network.json"
        )
        self.network = network
        self.sync_interval = sync_interval
        self.shutdown_timeout = shutdown_timeout
        self.reboot_timeout = reboot_timeout
        self.lease_wait = lease_wait
        self.probe_timeout = probe_timeout
        self.images = ImageCache(self.instances_path / "_base", self.controller)
        self.qemu: QemuIdentity | None = None
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._net_lock = threading.Lock()
        self._events = EventThread()
        self._callback_ids: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._last_state: dict[str, int] = {}
        self._reboots: dict[str, int] = {}
        self._firewall: Firewall | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self) -> Any:
        """Blocking: the shared connection, reopened if libvirtd went away."""
        with self._conn_lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                LOG.warning("libvirt connection to %s lost; reconnecting", self.uri)
                self._conn = None
            conn = libvirt.open(self.uri)
            self._callback_ids = [
                conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
                ),
                conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._on_reboot, None
                ),
            ]
            conn.setKeepAlive(5, 3)
            self._conn = conn
            return conn

    async def _run(self, func: Callable[[], T]) -> T:
        """Run a blocking libvirt function in a thread, mapping libvirt errors."""

        def call() -> T:
            try:
                return func()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise GuestNotFound(str(exc)) from exc
                raise DriverError(exc.get_error_message() or str(exc)) from exc

        return await asyncio.to_thread(call)

    def _lookup(self, uuid: str) -> Any:
        """Blocking: our domain with that uuid; GuestNotFound if absent or not ours."""
        uuid = _check_uuid(uuid)
        try:
            dom = self._connection().lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise GuestNotFound(f"Instance {uuid} not found on this host") from exc
            raise
        if self._metadata(dom) is None:
            raise GuestNotFound(f"Domain {uuid} exists but is not managed by mininova")
        return dom

    def _metadata(self, dom: Any) -> str | None:
        """Our metadata element, for domains of this agent only (its disk is in our dir).

        Several agents (or clouds) may share one libvirtd; each sees only its own guests.
        """
        if not dom.name().startswith("instance-"):
            return None
        try:
            meta = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, guestxml.NS_URI, 0)
            disk = ET.fromstring(dom.XMLDesc(0)).find("./devices/disk[@device='disk']/source")
        except (libvirt.libvirtError, ET.ParseError):
            return None
        path = Path(disk.get("file") or "") if disk is not None else None
        if path is None or path.parent.parent != self.instances_path:
            return None
        return meta

    def _instance_dir(self, uuid: str) -> Path:
        return self.instances_path / _check_uuid(uuid)

    def _guest_paths(self, spec: InstanceSpec) -> guestxml.GuestPaths:
        """Where a guest's files live in its instance dir (spawn, rebuild, resize)."""
        inst_dir = self._instance_dir(spec.uuid)
        return guestxml.GuestPaths(
            disk=inst_dir / "disk",
            config_drive=inst_dir / "disk.config" if spec.config_drive else None,
            console_log=inst_dir / "console.log",
            vnc_socket=inst_dir / "vnc.sock",
        )

    async def _write_root_and_drive(
        self, spec: InstanceSpec, disk: Path, config_drive: Path | None
    ) -> None:
        """A fresh overlay of the spec's image at `disk` and its config drive at
        `config_drive` (if any), both readable by QEMU."""
        base = await self.images.fetch(spec.image)
        await asyncio.to_thread(self._share_with_qemu, base, 0o640)
        fmt, vsize = await inspect_image(base)
        disk.unlink(missing_ok=True)
        await create_overlay(base, fmt, vsize, disk, spec.flavor.disk_gb)
        await asyncio.to_thread(self._share_with_qemu, disk, 0o600, True)
        if config_drive is not None:
            config_drive.unlink(missing_ok=True)
            await asyncio.to_thread(build_config_drive, spec, config_drive)
            await asyncio.to_thread(self._share_with_qemu, config_drive, 0o640)

    async def _info_with_address(self, uuid: str) -> GuestInfo:
        """The guest's info once it has an address, or after `lease_wait` s without one (a
        network without a DHCP range)."""
        info = await self.get_info(uuid)
        deadline = asyncio.get_running_loop().time() + self.lease_wait
        while not info.addresses and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1)
            info = await self.get_info(uuid)
        return info

    # -- events -----------------------------------------------------------------------------

    def _on_lifecycle(self, conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        """libvirt event thread: hand the event to the agent's loop."""
        state = event_power_state(event, detail)
        if state is None or not dom.name().startswith("instance-") or self._loop is None:
            return
        uuid = dom.UUIDString()
        with contextlib.suppress(RuntimeError):  # loop closed
            self._loop.call_soon_threadsafe(self._dispatch, uuid, state)

    def _on_reboot(self, conn: Any, dom: Any, opaque: Any) -> None:
        if self._loop is not None and dom.name().startswith("instance-"):
            uuid = dom.UUIDString()
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._count_reboot, uuid)

    def _count_reboot(self, uuid: str) -> None:
        self._reboots[uuid] = self._reboots.get(uuid, 0) + 1

    def _dispatch(self, uuid: str, state: int) -> None:
        if self._last_state.get(uuid) == state:
            return
        self._last_state[uuid] = state
        task = asyncio.get_running_loop().create_task(self._emit(uuid, state))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, uuid: str, state: int) -> None:
        try:
            await self.emit_event(uuid, state)
        except Exception:
            LOG.exception("event callback failed for %s", uuid)

    async def _sync_loop(self) -> None:
        """Catch changes whose events were missed (e.g. while reconnecting)."""
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                for guest in await self.list_guests():
                    self._dispatch(guest.uuid, guest.power_state)
            except Exception as exc:  # noqa: BLE001 - keep syncing
                LOG.warning("power state sync failed: %s", exc)

    # -- host -------------------------------------------------------------------------------

    async def init_host(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._events.start()
        await asyncio.to_thread(self._prepare_dirs)
        try:
            await asyncio.to_thread(self._connection)
        except libvirt.libvirtError as exc:
            raise DriverError(f"cannot connect to libvirt at {self.uri}: {exc}") from exc
        if self.requested_virt_type == "auto":
            result = await asyncio.to_thread(
                probe_kvm, self._connection(), self.instances_path / "_probe", self.probe_timeout
            )
            self.virt_type = "kvm" if result.use_kvm else "qemu"
            self.virt_type_reason = result.reason
        else:
            self.virt_type_reason = f"virt_type={self.requested_virt_type} configured"
            if self.virt_type == "kvm" and (problem := kvm_device_problem()):
                LOG.warning("virt_type=kvm but %s", problem)
        LOG.info(
            "libvirt driver using %s (%s)",
            "KVM" if self.virt_type == "kvm" else "QEMU/TCG",
            self.virt_type_reason,
        )
        await self._reap_cut_spawns()
        for guest in await self.list_guests():
            self._last_state[guest.uuid] = guest.power_state
        if self.sync_interval > 0:
            task = asyncio.get_running_loop().create_task(self._sync_loop())
            self._tasks.add(task)

    def _prepare_dirs(self) -> None:
        self.qemu = qemu_identity() if "/system" in self.uri else None
        for sub in (self.instances_path, self.instances_path / "_base"):
            self._guest_dir(sub)
        self._guest_dir(self.instances_path / "_probe", 0o770)
        if self.qemu is None:
            return
        problem = qemu_access_problem(self.instances_path, self.qemu)
        if problem:
            raise DriverError(
                f"QEMU cannot open guest files in {self.instances_path}: {problem}. Set"
                " instances_dir (--instances-dir, MININOVA_AGENT_INSTANCES_DIR) to a directory"
                f" every parent of which the user {self.qemu.user} can search (as root the"
                " default, /var/lib/libvirt/mininova/<host>, is prepared for it)"
            )

    def _guest_dir(self, path: Path, mode: int = 0o750) -> None:
        """A directory for guest files: root-owned, group of the QEMU user, no access for others."""
        for parent in reversed(path.parents):
            if not parent.exists():
                parent.mkdir()
                parent.chmod(0o711)  # traversable, not listable (mkdir's mode obeys the umask)
            elif parent == INSTANCES_ROOT and os.geteuid() == 0:
                parent.chmod(0o711)  # ours: keep it traversable for QEMU
        path.mkdir(parents=True, exist_ok=True)
        self._share_with_qemu(path, mode)

    def _share_with_qemu(self, path: Path, mode: int, owner: bool = False) -> None:
        """Give a guest file to the QEMU user (owner) or group (read only), else keep it 0600."""
        qemu = self.qemu
        if qemu is not None and os.geteuid() == 0:
            os.chown(path, qemu.uid if owner else 0, qemu.gid)
            os.chmod(path, mode)
        else:
            os.chmod(path, mode if path.is_dir() else mode & 0o700)

    async def cleanup_host(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

        def close() -> None:
            with self._conn_lock:
                if self._conn is None:
                    return
                for cid in self._callback_ids:
                    with contextlib.suppress(libvirt.libvirtError):
                        self._conn.domainEventDeregisterAny(cid)
                with contextlib.suppress(libvirt.libvirtError):
                    self._conn.close()
                self._conn = None

        await asyncio.to_thread(close)
        self._loop = None

    async def host_resources(self) -> HostResources:
        def collect() -> HostResources:
            conn = self._connection()
            model, mem_mb, cpus, _mhz, _nodes, sockets, cores, threads = conn.getInfo()[:8]
            disk = shutil.disk_usage(self.instances_path)
            vcpus_used = mem_used = disk_used = 0
            for dom in conn.listAllDomains(0):
                meta = self._metadata(dom)
                if meta is None:
                    continue
                disk_used += guestxml.flavor_from_metadata(meta)["disk_gb"]
                if dom.isActive():
                    info = dom.info()
                    mem_used += info[1] // 1024
                    vcpus_used += info[3]
            cpu_info = {
                "arch": "x86_64",
                "model": model,
                "vendor": "unknown",
                "topology": {"sockets": sockets, "cores": cores, "threads": threads},
                "features": [],
            }
            return HostResources(
                vcpus=cpus,
                memory_mb=mem_mb,
                local_gb=disk.total // GiB,
                vcpus_used=vcpus_used,
                memory_mb_used=mem_used,
                local_gb_used=disk_used,
                hypervisor_type="KVM" if self.virt_type == "kvm" else "QEMU",
                hypervisor_version=conn.getVersion(),
                cpu_info=json.dumps(cpu_info),
            )

        return await self._run(collect)

    # -- networking -------------------------------------------------------------------------

    def _usable_network(self) -> Any | None:
        """Blocking: the configured libvirt network if it exists and is active."""
        if not self.network:
            return None
        try:
            net = self._connection().networkLookupByName(self.network)
            return net if net.isActive() else None
        except libvirt.libvirtError:
            return None

    @staticmethod
    def _dhcp_hosts(net: Any) -> tuple[ET.Element | None, dict[str, str]]:
        """(the network's <dhcp> element, mac -> reserved ip)."""
        root = ET.fromstring(net.XMLDesc(0))
        for ip_el in root.findall("ip"):
            dhcp = ip_el.find("dhcp")
            if dhcp is not None and ip_el.get("family", "ipv4") == "ipv4":
                hosts = {
                    h.get("mac", "").lower(): h.get("ip", "")
                    for h in dhcp.findall("host")
                    if h.get("mac")
                }
                return dhcp, hosts
        return None, {}

    def _reserve_ip(self, net: Any, mac: str) -> str | None:
        """Blocking: add (or find) a static DHCP entry for mac; its IP, or None."""
        mac = mac.lower()
        with self._net_lock:
            dhcp, hosts = self._dhcp_hosts(net)
            if mac in hosts:
                return hosts[mac]
            rng = dhcp.find("range") if dhcp is not None else None
            if rng is None:
                return None
            taken = set(hosts.values())
            leases: list[dict] = []
            with contextlib.suppress(libvirt.libvirtError):
                leases = net.DHCPLeases()
            # dnsmasq keeps handing a MAC the address it leased before; reserve that one.
            ours = [
                lease.get("ipaddr")
                for lease in leases
                if (lease.get("mac") or "").lower() == mac and lease.get("ipaddr") not in taken
            ]
            taken |= {lease.get("ipaddr") for lease in leases}
            ip = ipaddress.IPv4Address(ours[0] if ours else rng.get("start"))
            end = ipaddress.IPv4Address(rng.get("end"))
            while not ours and ip <= end and str(ip) in taken:
                ip += 1
            if ip > end:
                raise DriverError(f"No free address left on libvirt network {self.network}")
            entry = ET.tostring(ET.Element("host", mac=mac, ip=str(ip)), encoding="unicode")
            net.update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                -1,
                entry,
                _NET_LIVE_CONFIG,
            )
            return str(ip)

    def _release_ip(self, net: Any, mac: str) -> None:
        mac = mac.lower()
        with self._net_lock:
            _dhcp, hosts = self._dhcp_hosts(net)
            if mac not in hosts:
                return
            entry = ET.tostring(ET.Element("host", mac=mac, ip=hosts[mac]), encoding="unicode")
            with contextlib.suppress(libvirt.libvirtError):
                net.update(
                    libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
                    libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                    -1,
                    entry,
                    _NET_LIVE_CONFIG,
                )

    def _addresses(self, dom: Any, xml: str) -> list[dict]:
        """Blocking: IPv4 addresses of the guest's NICs (lease, else reservation)."""
        leases: dict[str, str] = {}
        if dom.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                src = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
                for iface in (dom.interfaceAddresses(src, 0) or {}).values():
                    for addr in iface.get("addrs") or []:
                        if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                            leases[(iface.get("hwaddr") or "").lower()] = addr["addr"]
        out: list[dict] = []
        for mac, net_name in guestxml.interface_macs(xml):
            ip = leases.get(mac)
            if ip is None and net_name is None:
                ip = USER_NET_ADDR
            if ip is None:
                with contextlib.suppress(libvirt.libvirtError):
                    net = self._connection().networkLookupByName(net_name)
                    ip = self._dhcp_hosts(net)[1].get(mac)
            if ip:
                out.append({"version": 4, "addr": ip, "mac": mac})
        return out

    async def apply_network(self, state: dict) -> dict:
        """Security groups and floating IPs in nftables (firewall.py), on the bridge of the
        configured libvirt network; what was added is recorded in `network_record` (the agent's
        data dir: `network.json`)."""
        if self._firewall is None:

            def bridge() -> str:
                net = self._usable_network()
                with contextlib.suppress(libvirt.libvirtError):
                    if net is not None:
                        return str(net.bridgeName())
                return "virbr0"

            self._firewall = Firewall(self.network_record, await self._run(bridge))
        try:
            return await self._firewall.apply(state)
        except ValueError as exc:
            raise DriverError(f"bad network state: {exc}") from exc

    # -- guests -----------------------------------------------------------------------------

    def _guest_info(self, dom: Any) -> GuestInfo:
        """Blocking: GuestInfo of one domain."""
        state = dom.state()[0]
        power = _STATE_MAP.get(state, NOSTATE)
        if state == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage(0):
            power = SUSPENDED
        return GuestInfo(
            uuid=dom.UUIDString(),
            power_state=power,
            domain_name=dom.name(),
            addresses=self._addresses(dom, dom.XMLDesc(0)),
        )

    async def list_guests(self) -> list[GuestInfo]:
        def collect() -> list[GuestInfo]:
            out = []
            for dom in self._connection().listAllDomains(0):
                if self._metadata(dom) is None:
                    continue
                with contextlib.suppress(libvirt.libvirtError):  # vanished meanwhile
                    out.append(self._guest_info(dom))
            return out

        return await self._run(collect)

    async def get_info(self, uuid: str) -> GuestInfo:
        return await self._run(lambda: self._guest_info(self._lookup(uuid)))

    async def spawn(self, spec: InstanceSpec) -> GuestInfo:
        spec.uuid = _check_uuid(spec.uuid)
        inst_dir = self._instance_dir(spec.uuid)
        try:
            return await self.get_info(spec.uuid)  # already built (e.g. order replayed)
        except GuestNotFound:
            pass
        reserved_net: Any = None
        try:
            await asyncio.to_thread(self._guest_dir, inst_dir, 0o770)  # QEMU makes vnc.sock
            await asyncio.to_thread((inst_dir / SPAWN_MARKER).write_text, spec.mac_address)
            paths = self._guest_paths(spec)
            await self._write_root_and_drive(spec, paths.disk, paths.config_drive)

            def define_and_start() -> None:
                nonlocal reserved_net
                net = self._usable_network()
                if net is not None:
                    self._reserve_ip(net, spec.mac_address)
                    reserved_net = net
                else:
                    LOG.info(
                        "libvirt network %r missing or inactive; %s uses user-mode networking",
                        self.network,
                        spec.uuid,
                    )
                xml = guestxml.build_domain_xml(
                    spec, paths, virt_type=self.virt_type, network=self.network if net else None
                )
                dom = self._connection().defineXML(xml)
                try:
                    dom.create()
                except libvirt.libvirtError:
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefineFlags(_UNDEFINE_FLAGS)
                    raise

            await self._run(define_and_start)
        except BaseException:

            def cleanup() -> None:
                if reserved_net is not None:
                    self._release_ip(reserved_net, spec.mac_address)
                shutil.rmtree(inst_dir, ignore_errors=True)

            await asyncio.to_thread(cleanup)
            raise
        info = await self._info_with_address(spec.uuid)
        await asyncio.to_thread((inst_dir / SPAWN_MARKER).unlink, missing_ok=True)
        return info

    async def _reap_cut_spawns(self) -> None:
        """At start: remove what spawns cut by this agent's death left (domain, DHCP
        reservation, files). The controller failed those builds when the link dropped."""

        def cut() -> list[tuple[str, str]]:
            return [
                (marker.parent.name, marker.read_text().strip())
                for marker in self.instances_path.glob(f"*/{SPAWN_MARKER}")
            ]

        for uuid, mac in await asyncio.to_thread(cut):
            try:
                _check_uuid(uuid)
            except GuestNotFound:
                continue
            LOG.warning("the spawn of %s was cut by an agent restart: removing its guest", uuid)
            await self.destroy(uuid)  # the domain, its reservations, the directory
            net = await asyncio.to_thread(self._usable_network) if mac else None
            if net is not None:  # reserved, but killed before the domain was defined
                await asyncio.to_thread(self._release_ip, net, mac)

    async def rebuild(self, spec: InstanceSpec, power_on: bool) -> GuestInfo:
        """A fresh root disk and config drive, the same domain (see rebuild.py)."""
        spec.uuid = _check_uuid(spec.uuid)
        return await rebuild_guest(self, spec, power_on)

    async def destroy(self, uuid: str) -> None:
        uuid = _check_uuid(uuid)
        inst_dir = self._instance_dir(uuid)

        def remove() -> None:
            try:
                dom = self._lookup(uuid)
            except GuestNotFound:
                dom = None
            if dom is not None:
                macs = guestxml.interface_macs(dom.XMLDesc(0))
                if dom.isActive():
                    try:
                        dom.destroy()
                    except libvirt.libvirtError as exc:
                        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                            raise
                try:
                    dom.undefineFlags(_UNDEFINE_FLAGS)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
                for mac, net_name in macs:
                    if net_name:
                        with contextlib.suppress(libvirt.libvirtError):
                            self._release_ip(self._connection().networkLookupByName(net_name), mac)
            shutil.rmtree(inst_dir, ignore_errors=True)

        await self._run(remove)
        self._last_state.pop(uuid, None)
        self._reboots.pop(uuid, None)

    # -- power ------------------------------------------------------------------------------

    async def _wait(self, check: Callable[[], bool], timeout: float) -> bool:
        """Poll a blocking predicate until true or timeout; whether it became true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if await self._run(check):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.25)

    async def power_off(self, uuid: str) -> None:
        dom = await self._run(lambda: self._lookup(uuid))
        state = await self._run(lambda: dom.state()[0])
        if not await self._run(dom.isActive):
            return
        if state != libvirt.VIR_DOMAIN_PAUSED:
            with contextlib.suppress(DriverError):  # e.g. it stopped meanwhile
                await self._run(dom.shutdown)
            if await self._wait(lambda: not dom.isActive(), self.shutdown_timeout):
                return
            LOG.info("%s ignored ACPI shutdown for %.0f s; destroying", uuid, self.shutdown_timeout)
        await self._run(lambda: self._force_off(dom))

    @staticmethod
    def _force_off(dom: Any) -> None:
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise

    async def power_on(self, uuid: str) -> None:
        def start() -> None:
            dom = self._lookup(uuid)
            if not dom.isActive():
                dom.create()
            elif dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()

        await self._run(start)

    async def reboot(self, uuid: str, hard: bool) -> None:
        dom = await self._run(lambda: self._lookup(uuid))
        state = await self._run(lambda: dom.state()[0])
        if not hard and state == libvirt.VIR_DOMAIN_RUNNING:
            before = self._reboots.get(uuid, 0)
            await self._run(lambda: dom.reboot(0))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.reboot_timeout
            while loop.time() < deadline:
                if self._reboots.get(uuid, 0) != before:
                    return
                await asyncio.sleep(0.25)
            LOG.info("%s ignored ACPI reboot for %.0f s; resetting", uuid, self.reboot_timeout)
            await self._run(lambda: dom.reset(0))
            return

        def hard_reboot() -> None:
            if dom.isActive():
                self._force_off(dom)
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.create()

        await self._run(hard_reboot)

    async def pause(self, uuid: str) -> None:
        await self._run(lambda: self._lookup(uuid).suspend())

    async def unpause(self, uuid: str) -> None:
        await self._run(lambda: self._lookup(uuid).resume())

    async def suspend(self, uuid: str) -> None:
        await self._run(lambda: self._lookup(uuid).managedSave(0))

    async def resume(self, uuid: str) -> None:
        def start() -> None:
            dom = self._lookup(uuid)
            if not dom.isActive():
                dom.create()  # restores the managed save image

        await self._run(start)

    async def snapshot(self, uuid: str, dest: Path) -> None:
        """Copy the root disk (overlay + base) into one qcow2 while the guest is paused."""
        disk = self._instance_dir(uuid) / "disk"

        def pause_if_running() -> bool:
            dom = self._lookup(uuid)
            if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
                dom.suspend()
                return True
            return False

        paused = await self._run(pause_if_running)
        try:
            await run(
                "qemu-img",
                "convert",
                "-U",
                "-f",
                "qcow2",
                "-O",
                "qcow2",
                str(disk),
                str(dest),
                timeout=1800,
            )
        finally:
            if paused:
                await self._run(lambda: self._lookup(uuid).resume())

    # -- consoles ---------------------------------------------------------------------------

    async def console_output(self, uuid: str) -> str:
        log = self._instance_dir(uuid) / "console.log"

        def read() -> str:
            try:
                return console_log.decode(console_log.read_tail(log, self.console_log_max_bytes))
            except FileNotFoundError:
                self._lookup(uuid)  # GuestNotFound if the guest does not exist either
                return ""

        return await self._run(read)

    async def console_endpoint(self, uuid: str) -> ConsoleEndpoint:
        def find() -> ConsoleEndpoint:
            dom = self._lookup(uuid)
            if not dom.isActive():
                raise DriverError(f"Instance {uuid} is not running")
            endpoint = guestxml.vnc_endpoint(dom.XMLDesc(0))
            if endpoint is None:
                raise DriverError(f"Instance {uuid} has no VNC console")
            return endpoint

        return await self._run(find)

    # -- resize / cold migration (mininova/virt/libvirt/resize.py) ---------------------------

    async def resize_prepare(self, uuid: str) -> int:
        return await resize.prepare(self, _check_uuid(uuid))

    async def export_resize_disk(self, uuid: str, dest: Path) -> None:
        await resize.export_disk(self, _check_uuid(uuid), dest)

    async def finish_resize(
        self, spec: InstanceSpec, power_on: bool, disk: Path | None
    ) -> GuestInfo:
        spec.uuid = _check_uuid(spec.uuid)
        return await resize.finish(self, spec, power_on, disk)

    async def confirm_resize(self, uuid: str) -> None:
        await resize.confirm(self, _check_uuid(uuid))

    async def finish_revert_resize(self, uuid: str, power_on: bool) -> GuestInfo | None:
        return await resize.revert(self, _check_uuid(uuid), power_on)

    def staging_dir(self) -> Path:
        """Moved disks arrive next to the guests (same file system), not in /tmp."""
        return self.instances_path / "_staging"
