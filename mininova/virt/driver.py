"""The compute driver interface shared by the fake and libvirt drivers.

Every method is a coroutine; drivers that wrap blocking libraries (libvirt-python, qemu-img)
run those calls in a thread or subprocess so the agent's event loop never blocks.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mininova.protocol.core import CAPABILITY_HEADER
from mininova.virt.console_log import DEFAULT_MAX_BYTES as DEFAULT_CONSOLE_LOG_MAX_BYTES

# Nova power_state integers (as seen in OS-EXT-STS:power_state).
NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED = 7


class DriverError(Exception):
    """A driver operation failed; the message is shown to the user as the instance fault."""


class GuestNotFound(DriverError):
    """No guest with that uuid exists on this host."""


@dataclass
class FlavorSpec:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass
class ImageSpec:
    id: str
    name: str
    disk_format: str  # "qcow2" | "raw"
    size: int
    checksum: str  # md5 hex, as Glance records it
    url: str  # controller URL of GET /image/v2/images/{id}/file
    capability: str  # allows this host exactly that download, for this order


@dataclass
class ControllerAccess:
    """How the agent reaches the controller's HTTP API: its host credential and TLS trust."""

    credential: str = ""
    ssl: ssl.SSLContext | None = None  # None: plain http on loopback, or the system CAs

    def headers(self, capability: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}", CAPABILITY_HEADER: capability}

    @property
    def http_ssl(self) -> ssl.SSLContext | bool:
        """aiohttp's `ssl=`: the pinned CA's context, else default verification."""
        return self.ssl if self.ssl is not None else True

    def ws_ssl(self, url: str) -> dict[str, ssl.SSLContext]:
        """websockets' `ssl=` keyword for `url` (only for wss:// with a pinned CA)."""
        return {"ssl": self.ssl} if url.startswith("wss:") and self.ssl is not None else {}


@dataclass
class InstanceSpec:
    """Everything a driver needs to build one guest."""

    uuid: str
    name: str  # display name (user supplied, may contain any characters)
    hostname: str
    domain_name: str  # Nova-style "instance-%08x"
    project_id: str
    user_id: str
    flavor: FlavorSpec
    image: ImageSpec
    mac_address: str
    key_name: str | None = None
    public_keys: dict[str, str] = field(default_factory=dict)  # key name -> OpenSSH public key
    user_data: str | None = None  # base64 as sent by the API user
    metadata: dict[str, str] = field(default_factory=dict)
    availability_zone: str = "nova"
    config_drive: bool = True


@dataclass
class GuestInfo:
    uuid: str
    power_state: int
    domain_name: str = ""
    addresses: list[dict] = field(
        default_factory=list
    )  # [{"version": 4, "addr": "...", "mac": "..."}]


@dataclass
class HostResources:
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int = 0
    memory_mb_used: int = 0
    local_gb_used: int = 0
    hypervisor_type: str = "QEMU"
    hypervisor_version: int = 0
    cpu_info: str = "{}"
    host_ip: str = "127.0.0.1"


@dataclass
class ConsoleEndpoint:
    """Where the guest's VNC server listens on the host: a unix socket or host:port."""

    unix_path: Path | None = None
    host: str | None = None
    port: int | None = None


EventCallback = Callable[[str, int], Awaitable[None]]
"""Called with (instance uuid, new power_state) when the hypervisor reports a change."""


class ComputeDriver(abc.ABC):
    """What nova-compute asks of a hypervisor."""

    name: str = "abstract"
    # The most bytes of a guest's serial console log `console_output` returns (its tail);
    # the agent sets it from its `console_log_max_bytes`.
    console_log_max_bytes: int = DEFAULT_CONSOLE_LOG_MAX_BYTES

    def __init__(self) -> None:
        self._event_callback: EventCallback | None = None
        self.controller = ControllerAccess()  # filled in (in place) by the agent

    def set_event_callback(self, callback: EventCallback | None) -> None:
        self._event_callback = callback

    async def emit_event(self, uuid: str, power_state: int) -> None:
        if self._event_callback is not None:
            await self._event_callback(uuid, power_state)

    async def init_host(self) -> None:  # noqa: B027 - optional hook
        """Connect to the hypervisor, start event handling."""

    async def cleanup_host(self) -> None:  # noqa: B027 - optional hook
        """Release connections; never touches running guests."""

    @abc.abstractmethod
    async def host_resources(self) -> HostResources: ...

    @abc.abstractmethod
    async def list_guests(self) -> list[GuestInfo]: ...

    @abc.abstractmethod
    async def spawn(self, spec: InstanceSpec) -> GuestInfo: ...

    @abc.abstractmethod
    async def destroy(self, uuid: str) -> None:
        """Remove the guest and every file of it. Succeeds if the guest is already gone."""

    @abc.abstractmethod
    async def reboot(self, uuid: str, hard: bool) -> None: ...

    @abc.abstractmethod
    async def power_off(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def power_on(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def pause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def unpause(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def suspend(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def resume(self, uuid: str) -> None: ...

    @abc.abstractmethod
    async def get_info(self, uuid: str) -> GuestInfo:
        """Current state; raises GuestNotFound."""

    @abc.abstractmethod
    async def console_output(self, uuid: str) -> str:
        """The serial console log as text: its last `console_log_max_bytes` bytes."""

    @abc.abstractmethod
    async def console_endpoint(self, uuid: str) -> ConsoleEndpoint: ...

    async def rebuild(self, spec: InstanceSpec, power_on: bool) -> GuestInfo:
        """Replace the guest's root disk with a fresh one from `spec.image` and its config
        drive from `spec`, keeping its domain, MAC and address; start it if `power_on`.
        Raises GuestNotFound when the guest is not on this host."""
        raise DriverError(f"the {self.name} driver cannot rebuild")

    async def snapshot(self, uuid: str, dest: Path) -> None:
        """Write a standalone qcow2 copy of the guest's root disk to `dest`."""
        raise DriverError(f"the {self.name} driver cannot snapshot")

    async def apply_network(self, state: dict) -> dict:
        """Enforce the controller's desired network state (`network_sync`, version 1: security
        groups and floating IPs of this host's guests); {"ok", "errors", ...}."""
        raise DriverError(f"the {self.name} driver cannot enforce network state")

    # -- resize / cold migration (mininova/virt/libvirt/resize.py for libvirt) ------------------

    async def resize_prepare(self, uuid: str) -> int:
        """Power the guest off and keep it aside (disk and definition, no longer a guest of
        this host) until `confirm_resize` or `finish_revert_resize`; its power state before."""
        raise DriverError(f"the {self.name} driver cannot resize")

    async def export_resize_disk(self, uuid: str, dest: Path) -> None:
        """Write the kept-aside root disk as one standalone qcow2 (no backing file) to `dest`."""
        raise DriverError(f"the {self.name} driver cannot migrate")

    async def finish_resize(
        self, spec: InstanceSpec, power_on: bool, disk: Path | None
    ) -> GuestInfo:
        """Build the guest with `spec.flavor` from the kept-aside disk of this host (`disk`
        None) or from a moved standalone disk, grown to the flavor's size; start it if
        `power_on`."""
        raise DriverError(f"the {self.name} driver cannot resize")

    def staging_dir(self) -> Path | None:
        """Where a moved disk is downloaded to (None: the system's temp dir)."""
        return None

    async def confirm_resize(self, uuid: str) -> None:  # noqa: B027 - optional hook
        """Drop what `resize_prepare` kept aside (nothing kept: nothing to do)."""

    async def finish_revert_resize(self, uuid: str, power_on: bool) -> GuestInfo | None:
        """Bring the kept-aside guest back as it was (None: nothing was kept aside)."""
        return None
