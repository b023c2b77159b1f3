"""Checks of what an agent reports (`hello`, `heartbeat`, `instance_event` params), sans I/O.

An agent's report reaches the database (power states, addresses, the host's inventory), so
every value is checked here first: a malformed one is refused (`ValueError`, answered as
`invalid_params`) or, inside a list of guests, dropped so that it is ignored, never applied.
Strings that reach the database carry no control characters (PostgreSQL refuses NUL in
text) and numbers stay inside a 64-bit column.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mininova.protocol.core import NETWORK_STATE_VERSIONS

# Nova's power states (nova.compute.power_state): NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED,
# SUSPENDED.
POWER_STATES = frozenset({0, 1, 3, 4, 6, 7})
MAX_NAME = 255
MAX_TEXT = 64 * 1024
MAX_COUNT = 2**63 - 1
RESOURCE_COUNTS = ("hypervisor_version", "vcpus", "memory_mb", "local_gb")
RESOURCE_TEXTS = ("hypervisor_type", "cpu_info", "host_ip")


def clean_text(value: Any, limit: int = MAX_NAME) -> str | None:
    """`value` if it is a string of at most `limit` characters without control characters."""
    if not isinstance(value, str) or len(value) > limit:
        return None
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value):
        return None
    return value


def host_name(value: Any) -> str:
    """The `host` of a hello; ValueError unless a non-empty, printable name of <= 255 chars."""
    name = clean_text(value)
    if not name or name != name.strip():
        raise ValueError("hello needs a host name (1-255 printable characters)")
    return name


def power_state(value: Any) -> int | None:
    """One of Nova's power states, else None."""
    return value if type(value) is int and value in POWER_STATES else None


def resources(value: Any) -> dict[str, Any]:
    """A hello's HostResources with counts that fit a column (else 0) and printable texts
    (else left out, so the column's default applies); ValueError if not an object."""
    res = value or {}
    if not isinstance(res, dict):
        raise ValueError("resources must be an object")
    clean: dict[str, Any] = {}
    for key in RESOURCE_COUNTS:
        raw = res.get(key)
        try:
            number = int(raw or 0) if type(raw) is not bool else 0
        except (TypeError, ValueError, OverflowError):
            number = 0
        clean[key] = number if 0 <= number <= MAX_COUNT else 0
    for key in RESOURCE_TEXTS:
        text = clean_text(res.get(key), MAX_TEXT)
        if text is not None:
            clean[key] = text
    return clean


def _address(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    addr = clean_text(item.get("addr"), 64)
    if addr is None:
        return None
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    out: dict[str, Any] = {"version": ip.version, "addr": addr}
    version = item.get("version", ip.version)
    if version != ip.version or type(version) is not int:
        return None
    if "mac" in item:
        mac = item["mac"]
        if mac is not None and clean_text(mac, 64) is None:
            return None
        out["mac"] = mac
    return out


def addresses(value: Any) -> list[dict[str, Any]] | None:
    """A GuestInfo's `addresses` ([{version, addr, mac}]) when every entry is well-formed."""
    if not isinstance(value, list) or len(value) > 64:
        return None
    out = [_address(item) for item in value]
    return None if any(item is None for item in out) else out  # type: ignore[return-value]


def guest(value: Any) -> dict[str, Any] | None:
    """A GuestInfo with only the fields that are well-formed; None without a usable uuid.

    A bad `power_state` or `addresses` is left out (the report then does not change them)."""
    if not isinstance(value, dict):
        return None
    uuid = clean_text(value.get("uuid"), 64)
    if not uuid:
        return None
    out: dict[str, Any] = {"uuid": uuid}
    power = power_state(value.get("power_state"))
    if power is not None:
        out["power_state"] = power
    addrs = addresses(value.get("addresses"))
    if addrs is not None:
        out["addresses"] = addrs
    domain = clean_text(value.get("domain_name"))
    if domain is not None:
        out["domain_name"] = domain
    return out


def guests(value: Any) -> list[dict[str, Any]]:
    """The well-formed GuestInfos of a list (the others are dropped); ValueError if not a list."""
    if not isinstance(value, list):
        raise ValueError("guests must be a list")
    return [g for g in (guest(item) for item in value) if g is not None]


def network_state_version(value: Any) -> int:
    """The newest network state version both sides take, from a hello's
    `network_state_versions` (anything else, or nothing in common: version 1)."""
    if not isinstance(value, list):
        return 1
    common = [v for v in value if type(v) is int and v in NETWORK_STATE_VERSIONS]
    return max(common, default=1)
