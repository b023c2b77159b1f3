"""An in-memory compute driver: realistic power transitions, no hypervisor.

Spawning takes `boot_seconds`, power operations a few milliseconds. Each guest keeps a fake
serial log (so `console_output` means something), a deterministic private IPv4 derived from
its MAC, and, on first console request, a loopback fake VNC server.

Guest address: `guest_address` (or the env var MININOVA_AGENT_FAKE_GUEST_ADDRESS, e.g.
127.0.0.1) makes every guest report that one IPv4 instead of its 10.0.x.y, so tests can run a
real TCP server "in the guest" and reach it through `open_tcp_tunnel`.

Test hooks: a spawn fails with DriverError when the instance metadata has
`fake_fail_spawn = "1"` or the image name starts with `fail-`; `fake_guest_poweroff(uuid)`
simulates a guest shutting itself down.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mininova.paths import write_private
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
    FlavorSpec,
    GuestInfo,
    GuestNotFound,
    HostResources,
    ImageSpec,
    InstanceSpec,
)
from mininova.virt.fakevnc import serve_fake_vnc

log = logging.getLogger(__name__)

STATE_NAMES = {
    NOSTATE: "nostate",
    RUNNING: "running",
    PAUSED: "paused",
    SHUTDOWN: "shutdown",
    CRASHED: "crashed",
    SUSPENDED: "suspended",
}
MAX_LOG_LINES = 2000
NETWORK_FILE_DELAY = 5.0  # s: how long `fake-network.json` may lag the last state pushed
GUEST_ADDRESS_ENV = "MININOVA_AGENT_FAKE_GUEST_ADDRESS"


def fake_ipv4(key: str) -> str:
    """A stable 10.0.x.y address (y in 2..254) derived from a MAC address or uuid."""
    digest = int.from_bytes(hashlib.sha256(key.lower().encode()).digest()[:4], "big")
    return f"10.0.{(digest >> 8) & 0xFF}.{2 + digest % 253}"


@dataclass
class _Guest:
    spec: InstanceSpec
    power_state: int
    log: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    vnc: asyncio.AbstractServer | None = None
    vnc_port: int | None = None


class FakeDriver(ComputeDriver):
    name = "fake"

    def __init__(
        self,
        vcpus: int = 16,
        memory_mb: int = 32768,
        disk_gb: int = 500,
        boot_seconds: float = 0.2,
        op_seconds: float = 0.005,
        host_ip: str = "127.0.0.1",
        state_file: Path | None = None,
        guest_address: str | None = None,
    ) -> None:
        """With `state_file`, guests outlive the agent process (as libvirt guests do)."""
        super().__init__()
        if guest_address is None:
            guest_address = os.environ.get(GUEST_ADDRESS_ENV) or None
        self.guest_address = guest_address
        self.state_file = state_file
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        self.boot_seconds = boot_seconds
        self.op_seconds = op_seconds
        self.host_ip = host_ip
        self._guests: dict[str, _Guest] = {}
        # uuid -> (what the guest's entry was encoded from, the entry): a save encodes only
        # the guests that changed since the last one
        self._encoded: dict[str, tuple[InstanceSpec, tuple, str]] = {}
        self._network_write: asyncio.TimerHandle | None = None
        self._resized: dict[str, _Guest] = {}  # kept aside by resize_prepare (not persisted)
        self._vnc_lock = asyncio.Lock()
        self.network_state: dict | None = None  # the last `network_sync` state
        self.network_syncs = 0
        self._load()

    # -- persistence -----------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text())
        for uuid, item in data.items():
            spec = dict(item["spec"])
            spec["flavor"] = FlavorSpec(**spec["flavor"])
            spec["image"] = ImageSpec(**spec["image"])
            guest = _Guest(spec=InstanceSpec(**spec), power_state=item["power_state"])
            guest.log.extend(item.get("log", []))
            self._guests[uuid] = guest

    def _save(self) -> None:
        """Write every guest to the state file. Only the guests that changed since the last
        save are encoded again (a boot on a host of hundreds of guests re-encoded them all),
        and the file is replaced atomically but not fsynced: it is a fake's memory across
        restarts, not a disk image."""
        if self.state_file is None:
            return
        parts = []
        for uuid, g in self._guests.items():
            # the log is bounded: a line added to a full one changes its first line
            first, last = (g.log[0], g.log[-1]) if g.log else ("", "")
            seen = (g.power_state, len(g.log), first, last)
            encoded = self._encoded.get(uuid)
            if encoded is None or encoded[0] is not g.spec or encoded[1] != seen:
                entry = (
                    f'{json.dumps(uuid)}: {{"spec": {json.dumps(asdict(g.spec))}, '
                    f'"power_state": {int(g.power_state)}, "log": {json.dumps(list(g.log))}}}'
                )
                encoded = self._encoded[uuid] = (g.spec, seen, entry)
            parts.append(encoded[2])
        for uuid in self._encoded.keys() - self._guests.keys():
            del self._encoded[uuid]
        self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # holds user data and keys: 0600
        write_private(self.state_file, "{" + ", ".join(parts) + "}", durable=False)

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, uuid: str) -> _Guest:
        guest = self._guests.get(uuid)
        if guest is None:
            raise GuestNotFound(f"no guest {uuid} on this host")
        return guest

    def _boot_lines(self, spec: InstanceSpec) -> list[str]:
        """The console lines a fake guest logs as it boots from `spec`."""
        return [
            "mininova fake guest",
            f"hostname={spec.hostname}",
            f"uuid={spec.uuid}",
            f"domain={spec.domain_name}",
            f"image={spec.image.name}",
            f"ip={self._address(spec)}",
        ]

    def _address(self, spec: InstanceSpec) -> str:
        return self.guest_address or fake_ipv4(spec.mac_address or spec.uuid)

    def _info(self, guest: _Guest) -> GuestInfo:
        spec = guest.spec
        addr = self._address(spec)
        return GuestInfo(
            uuid=spec.uuid,
            power_state=guest.power_state,
            domain_name=spec.domain_name,
            addresses=[{"version": 4, "addr": addr, "mac": spec.mac_address}],
        )

    async def _transition(
        self, uuid: str, allowed: set[int] | None, target: int, what: str
    ) -> None:
        guest = self._get(uuid)
        if allowed is not None and guest.power_state not in allowed:
            raise DriverError(
                f"cannot {what} guest {uuid}: it is "
                f"{STATE_NAMES.get(guest.power_state, guest.power_state)}"
            )
        await asyncio.sleep(self.op_seconds)
        guest = self._get(uuid)  # destroyed meanwhile?
        await self._set_state(guest, target, what)

    async def _set_state(self, guest: _Guest, target: int, what: str) -> None:
        old = guest.power_state
        guest.log.append(
            f"[fake] {what}: {STATE_NAMES.get(old, old)} -> {STATE_NAMES.get(target, target)}"
        )
        if old == target:
            self._save()
            return
        guest.power_state = target
        self._save()
        if target in (SHUTDOWN, SUSPENDED, CRASHED):
            await self._stop_vnc(guest)
        await self.emit_event(guest.spec.uuid, target)

    @staticmethod
    async def _stop_vnc(guest: _Guest) -> None:
        server, guest.vnc, guest.vnc_port = guest.vnc, None, None
        if server is not None:
            server.close()
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except TimeoutError:
                pass

    # -- ComputeDriver ---------------------------------------------------------------------

    async def cleanup_host(self) -> None:
        if self._network_write is not None:
            self._network_write.cancel()
            self._write_network()
        for guest in self._guests.values():
            await self._stop_vnc(guest)

    async def host_resources(self) -> HostResources:
        specs = [g.spec for g in self._guests.values()]
        return HostResources(
            vcpus=self.vcpus,
            memory_mb=self.memory_mb,
            local_gb=self.disk_gb,
            vcpus_used=sum(s.flavor.vcpus for s in specs),
            memory_mb_used=sum(s.flavor.ram_mb for s in specs),
            local_gb_used=sum(
                s.flavor.disk_gb + s.flavor.ephemeral_gb + -(-s.flavor.swap_mb // 1024)
                for s in specs
            ),
            hypervisor_type="fake",
            hypervisor_version=1000,
            cpu_info='{"arch": "x86_64", "model": "fake"}',
            host_ip=self.host_ip,
        )

    async def list_guests(self) -> list[GuestInfo]:
        return [self._info(g) for g in self._guests.values()]

    async def spawn(self, spec: InstanceSpec) -> GuestInfo:
        existing = self._guests.get(spec.uuid)
        if existing is not None:  # a repeated order (e.g. after a reconnect): same answer
            return self._info(existing)
        await asyncio.sleep(self.boot_seconds)
        if spec.metadata.get("fake_fail_spawn") == "1" or spec.image.name.startswith("fail-"):
            raise DriverError("fake spawn failure requested")
        if spec.uuid in self._guests:
            return self._info(self._guests[spec.uuid])
        guest = _Guest(spec=spec, power_state=NOSTATE)
        guest.log.extend(self._boot_lines(spec))
        self._guests[spec.uuid] = guest
        await self._set_state(guest, RUNNING, "boot")
        guest.log.append(f"{spec.hostname} login:")
        return self._info(guest)

    async def rebuild(self, spec: InstanceSpec, power_on: bool) -> GuestInfo:
        """The guest's spec becomes `spec` (same MAC and domain) and it boots again, logging
        the boot lines anew; fails like spawn for a `fail-` image."""
        guest = self._get(spec.uuid)
        await self._set_state(guest, SHUTDOWN, "rebuild: power off")
        await asyncio.sleep(self.boot_seconds)
        guest = self._get(spec.uuid)
        if spec.image.name.startswith("fail-"):
            raise DriverError("fake rebuild failure requested")
        spec.mac_address, spec.domain_name = guest.spec.mac_address, guest.spec.domain_name
        guest.spec = spec
        guest.log.append(f"[fake] rebuild from image {spec.image.name}")
        guest.log.extend(self._boot_lines(spec))
        self._save()
        if power_on:
            await self._set_state(guest, RUNNING, "boot")
            guest.log.append(f"{spec.hostname} login:")
        return self._info(guest)

    async def destroy(self, uuid: str) -> None:
        guest = self._guests.pop(uuid, None)
        if guest is not None:
            self._save()
            await self._stop_vnc(guest)
            await asyncio.sleep(self.op_seconds)

    async def reboot(self, uuid: str, hard: bool) -> None:
        guest = self._get(uuid)
        if not hard and guest.power_state != RUNNING:
            hard = True  # a soft reboot of a guest that is not running falls back to hard
        await asyncio.sleep(self.op_seconds)
        guest = self._get(uuid)
        guest.log.append(f"[fake] {'hard' if hard else 'soft'} reboot")
        await self._set_state(guest, RUNNING, "reboot")

    async def power_off(self, uuid: str) -> None:
        await self._transition(uuid, None, SHUTDOWN, "power_off")

    async def power_on(self, uuid: str) -> None:
        await self._transition(uuid, None, RUNNING, "power_on")

    async def pause(self, uuid: str) -> None:
        await self._transition(uuid, {RUNNING, PAUSED}, PAUSED, "pause")

    async def unpause(self, uuid: str) -> None:
        await self._transition(uuid, {PAUSED, RUNNING}, RUNNING, "unpause")

    async def suspend(self, uuid: str) -> None:
        await self._transition(uuid, {RUNNING, PAUSED, SUSPENDED}, SUSPENDED, "suspend")

    async def resume(self, uuid: str) -> None:
        await self._transition(uuid, {SUSPENDED, RUNNING}, RUNNING, "resume")

    async def get_info(self, uuid: str) -> GuestInfo:
        return self._info(self._get(uuid))

    async def console_output(self, uuid: str) -> str:
        guest = self._get(uuid)
        text = "".join(line + "\n" for line in guest.log)
        return console_log.tail_text(text, self.console_log_max_bytes)

    async def console_endpoint(self, uuid: str) -> ConsoleEndpoint:
        async with self._vnc_lock:
            guest = self._get(uuid)
            if guest.power_state not in (RUNNING, PAUSED):
                raise DriverError(
                    f"console unavailable: guest {uuid} is "
                    f"{STATE_NAMES.get(guest.power_state, guest.power_state)}"
                )
            if guest.vnc is None:
                guest.vnc, guest.vnc_port = await serve_fake_vnc(guest.spec.domain_name)
            return ConsoleEndpoint(host="127.0.0.1", port=guest.vnc_port)

    async def snapshot(self, uuid: str, dest: Path) -> None:
        """A small qcow2-looking file naming the guest (enough to round-trip an image)."""
        guest = self._get(uuid)
        await asyncio.sleep(self.op_seconds)
        dest.write_bytes(
            b"QFI\xfb" + f"fake snapshot of {guest.spec.uuid}\n".encode() + b"\0" * 4096
        )

    async def apply_network(self, state: dict) -> dict:
        """Record the desired network state (`network_state`, and `fake-network.json` next
        to the state file) so tests can see what the controller pushed; nothing is enforced."""
        self.network_state = state
        self.network_syncs += 1
        if self.state_file is not None and self._network_write is None:
            # at most one write per NETWORK_FILE_DELAY: a host of a busy project is sent its
            # groups' members on every boot, and the file is for people to look at
            self._network_write = asyncio.get_running_loop().call_later(
                NETWORK_FILE_DELAY, self._write_network
            )
        guests = state.get("instances") if isinstance(state, dict) else None
        return {"ok": True, "errors": [], "guests": len(guests or [])}

    def _write_network(self) -> None:
        """Write the last network state to `network_file`."""
        self._network_write = None
        if self.state_file is not None and self.network_state is not None:
            self.state_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(self.network_file, json.dumps(self.network_state), durable=False)

    @property
    def network_file(self) -> Path:
        """Where a fake agent with a state file writes the last network state it got."""
        base = self.state_file or Path("fake-guests.json")
        return base.with_name("fake-network.json")

    # -- resize / cold migration ----------------------------------------------------------
    # Test hook: instance metadata `fake_finish_resize` = "fail" (DriverError), "slow" (0.5 s)
    # or "hang" (never answers, so a test can stop the agent mid-migration).

    async def resize_prepare(self, uuid: str) -> int:
        guest = self._get(uuid)
        before = guest.power_state
        if before != SHUTDOWN:
            await self._set_state(guest, SHUTDOWN, "resize: power off")
        self._guests.pop(uuid)
        self._resized[uuid] = guest
        self._save()
        return before

    async def export_resize_disk(self, uuid: str, dest: Path) -> None:
        guest = self._resized.get(uuid)
        if guest is None:
            raise GuestNotFound(f"no guest {uuid} kept aside on this host")
        header = json.dumps({"uuid": uuid, "log": list(guest.log)[-20:]}).encode()
        dest.write_bytes(b"QFI\xfb" + len(header).to_bytes(4, "big") + header + b"\0" * 65536)

    async def finish_resize(
        self, spec: InstanceSpec, power_on: bool, disk: Path | None
    ) -> GuestInfo:
        hook = spec.metadata.get("fake_finish_resize")
        if hook == "hang":  # half built: the guest exists here, the answer never comes
            self._guests[spec.uuid] = _Guest(spec=spec, power_state=SHUTDOWN)
            await asyncio.Event().wait()
        if hook == "fail":
            raise DriverError("fake finish_resize failure requested")
        if hook == "slow":
            await asyncio.sleep(0.5)
        await asyncio.sleep(self.boot_seconds)
        old = self._resized.get(spec.uuid)
        guest = _Guest(spec=spec, power_state=SHUTDOWN)
        if disk is not None:
            data = disk.read_bytes()
            if not data.startswith(b"QFI\xfb"):
                raise DriverError("the moved disk is not a qcow2 image")
            length = int.from_bytes(data[4:8], "big")
            moved = json.loads(data[8 : 8 + length])
            guest.log.extend(moved.get("log", []))
            guest.log.append(f"[fake] booted from a moved disk of {len(data)} bytes")
        elif old is not None:
            guest.log.extend(old.log)
        else:
            raise DriverError(f"no disk of {spec.uuid} kept aside on this host")
        guest.log.append(
            f"[fake] flavor {spec.flavor.name}: {spec.flavor.vcpus} vCPU, {spec.flavor.ram_mb} MiB,"
            f" {spec.flavor.disk_gb} GiB"
        )
        self._guests[spec.uuid] = guest
        if power_on:
            await self._set_state(guest, RUNNING, "resize: boot")
        self._save()
        return self._info(guest)

    async def confirm_resize(self, uuid: str) -> None:
        self._resized.pop(uuid, None)

    async def finish_revert_resize(self, uuid: str, power_on: bool) -> GuestInfo | None:
        guest = self._resized.pop(uuid, None)
        if guest is None:
            existing = self._guests.get(uuid)
            return self._info(existing) if existing is not None else None
        self._guests[uuid] = guest
        guest.log.append("[fake] resize reverted")
        if power_on:
            await self._set_state(guest, RUNNING, "revert: boot")
        self._save()
        return self._info(guest)

    def kept_aside(self) -> list[str]:
        """Uuids of guests `resize_prepare` keeps aside (tests check nothing is left)."""
        return sorted(self._resized)

    # -- test hooks ------------------------------------------------------------------------

    async def fake_guest_poweroff(self, uuid: str) -> None:
        """The guest shut itself down (e.g. `poweroff` inside it): emits SHUTDOWN."""
        guest = self._get(uuid)
        guest.log.append("reboot: Power down")
        await self._set_state(guest, SHUTDOWN, "guest poweroff")

    async def fake_guest_crash(self, uuid: str) -> None:
        """The guest crashed: emits CRASHED."""
        guest = self._get(uuid)
        guest.log.append("Kernel panic - not syncing: fake crash")
        await self._set_state(guest, CRASHED, "crash")
