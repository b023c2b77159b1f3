"""Pick and build the compute driver an agent's config asks for."""

from __future__ import annotations

import socket
from pathlib import Path

from mininova.config import AgentConfig
from mininova.paths import default_instances_dir
from mininova.virt.driver import ComputeDriver, DriverError

DRIVERS = ("fake", "libvirt")


def create_driver(config: AgentConfig) -> ComputeDriver:
    """`fake` → FakeDriver, `libvirt` → LibvirtDriver (imported lazily: libvirt-python is an
    optional dependency). Raises ValueError for an unknown name and DriverError when the
    libvirt driver cannot be imported."""
    name = (config.driver or "").strip().lower()
    if name == "fake":
        from mininova.virt.fake import FakeDriver

        return FakeDriver(
            vcpus=config.fake_vcpus,
            memory_mb=config.fake_memory_mb,
            disk_gb=config.fake_disk_gb,
            boot_seconds=config.fake_boot_seconds,
            state_file=config.data_dir / "fake-guests.json",
        )
    if name == "libvirt":
        try:
            from mininova.virt.libvirt.driver import LibvirtDriver
        except ImportError as exc:
            raise DriverError(f"libvirt driver unavailable: {exc}") from exc
        return LibvirtDriver(
            uri=config.libvirt_uri,
            virt_type=config.virt_type,
            instances_path=instances_dir(config),
            network=config.libvirt_network,
            sync_interval=config.sync_interval,
            network_record=config.data_dir / "network.json",
        )
    raise ValueError(
        f"unknown compute driver {config.driver!r} (expected one of: {', '.join(DRIVERS)})"
    )


def instances_dir(config: AgentConfig) -> Path:
    """Where this agent's guest files live (`instances_dir`, else the per-host default)."""
    if config.instances_dir:
        return Path(config.instances_dir).expanduser()
    return default_instances_dir(config.host or socket.gethostname())
