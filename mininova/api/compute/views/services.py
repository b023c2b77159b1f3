"""os-services views: `id` is an int below 2.53 and a uuid from 2.53; 2.11 adds
`forced_down`."""

from __future__ import annotations

from typing import Any

from mininova.api.microversions import V2_11, V2_53, Field, render_fields
from mininova.timeutil import nova_usec_time

# In response order (records from mininova.api.compute.compute_hosts.service_records).
SERVICE_FIELDS: tuple[Field[dict[str, Any]], ...] = (
    Field("id", lambda s: s["id"], until=V2_53),
    Field("id", lambda s: s["uuid"], since=V2_53),
    Field("binary", lambda s: s["binary"]),
    Field("host", lambda s: s["host"]),
    Field("zone", lambda s: s["zone"]),
    Field("status", lambda s: "disabled" if s["disabled"] else "enabled"),
    Field("state", lambda s: "up" if s["up"] else "down"),
    Field("updated_at", lambda s: nova_usec_time(s["updated_at"])),
    Field("disabled_reason", lambda s: s["disabled_reason"]),
    Field("forced_down", lambda s: s["forced_down"], since=V2_11),
)


def service(record: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    return render_fields(SERVICE_FIELDS, version, record)


def legacy_action(host: str, binary: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """The answer of a pre-2.53 action (enable, disable, disable-log-reason, force-down)."""
    result: dict[str, Any] = {"host": host, "binary": binary}
    if action == "force-down":
        result["forced_down"] = body["forced_down"]
    else:
        result["status"] = "enabled" if action == "enable" else "disabled"
    if action == "disable-log-reason":
        result["disabled_reason"] = body["disabled_reason"]
    return result
