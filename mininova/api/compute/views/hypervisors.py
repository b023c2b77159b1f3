"""os-hypervisors views: 2.28 turns `cpu_info` into an object, 2.53 uses uuids for the
hypervisor and its service, 2.75 always shows `servers` when asked for, 2.88 drops the
resource fields and adds `uptime`."""

from __future__ import annotations

from typing import Any

from mininova.api.compute.compute_hosts import COMPUTE, Hypervisor, hypervisor_uuid, service_uuid
from mininova.api.microversions import (
    V2_28,
    V2_53,
    V2_75,
    V2_88,
    Field,
    at_least,
    render_fields,
)
from mininova.store.db import Row, loads
from mininova.timeutil import now_iso, now_utc, parse_iso


def uptime(node: Row, up: bool) -> str | None:
    """A `uptime`-style line for a host that is up (None when it is down)."""
    if not up:
        return None
    since = parse_iso(node.get("created_at") or now_iso())
    seconds = max(0, int((now_utc() - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, (rest % 3600) // 60
    clock = now_utc().strftime("%H:%M:%S")
    return (
        f" {clock} up {days} days, {hours:2d}:{minutes:02d},  0 users,  "
        "load average: 0.00, 0.00, 0.00"
    )


def _node(name: str, convert: Any = None) -> Field[Hypervisor]:
    if convert is None:
        return Field(name, lambda h: h.node[name])
    return Field(name, lambda h: convert(h.node[name]))


def _service(h: Hypervisor, uuids: bool) -> dict[str, Any]:
    host = h.node["host"]
    return {
        "id": service_uuid(host, COMPUTE) if uuids else int(h.node["id"]) + 2,
        "host": host,
        "disabled_reason": h.node["disabled_reason"],
    }


def _free(total: str, used: str):
    return lambda h: int(h.node[total]) - getattr(h.usage, used)


SUMMARY_FIELDS: tuple[Field[Hypervisor], ...] = (
    Field("id", lambda h: int(h.node["id"]), until=V2_53),
    Field("id", lambda h: hypervisor_uuid(h.node["host"]), since=V2_53),
    _node("hypervisor_hostname"),
    Field("state", lambda h: "up" if h.up else "down"),
    Field("status", lambda h: "disabled" if h.node["disabled"] else "enabled"),
)
DETAIL_FIELDS: tuple[Field[Hypervisor], ...] = (
    *SUMMARY_FIELDS,
    _node("hypervisor_type"),
    _node("hypervisor_version", int),
    _node("host_ip"),
    Field("service", lambda h: _service(h, False), until=V2_53),
    Field("service", lambda h: _service(h, True), since=V2_53),
    Field("vcpus", lambda h: int(h.node["vcpus"]), until=V2_88),
    Field("memory_mb", lambda h: int(h.node["memory_mb"]), until=V2_88),
    Field("local_gb", lambda h: int(h.node["local_gb"]), until=V2_88),
    Field("vcpus_used", lambda h: h.usage.vcpus_used, until=V2_88),
    Field("memory_mb_used", lambda h: h.usage.memory_mb_used, until=V2_88),
    Field("local_gb_used", lambda h: h.usage.local_gb_used, until=V2_88),
    Field("free_ram_mb", _free("memory_mb", "memory_mb_used"), until=V2_88),
    Field("free_disk_gb", _free("local_gb", "local_gb_used"), until=V2_88),
    Field("current_workload", lambda h: h.usage.current_workload, until=V2_88),
    Field("running_vms", lambda h: h.usage.running_vms, until=V2_88),
    Field("disk_available_least", _free("local_gb", "local_gb_used"), until=V2_88),
    Field("cpu_info", lambda h: h.node["cpu_info"], until=V2_28),
    Field("cpu_info", lambda h: loads(h.node["cpu_info"], {}) or {}, since=V2_28, until=V2_88),
    Field("uptime", lambda h: uptime(h.node, h.up), since=V2_88),
)


def _servers(servers: list[Row]) -> list[dict[str, str]]:
    return [{"name": f"instance-{int(s['id']):08x}", "uuid": s["uuid"]} for s in servers]


def hypervisor(
    h: Hypervisor, version: tuple[int, int], *, detail: bool, with_servers: bool = False
) -> dict[str, Any]:
    """A hypervisor of a list, GET or search. `servers` is shown when it has some, and from
    2.75 as an empty list too when `with_servers` asked for it."""
    view = render_fields(DETAIL_FIELDS if detail else SUMMARY_FIELDS, version, h)
    if h.servers:
        view["servers"] = _servers(h.servers)
    elif with_servers and at_least(version, V2_75):
        view["servers"] = []
    return view


def uptime_view(h: Hypervisor, version: tuple[int, int]) -> dict[str, Any]:
    """GET /os-hypervisors/{id}/uptime (below 2.88)."""
    return {**render_fields(SUMMARY_FIELDS, version, h), "uptime": uptime(h.node, h.up)}
