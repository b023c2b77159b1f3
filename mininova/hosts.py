"""Compute host liveness, shared by the scheduler, the hub and the os-services API."""

from __future__ import annotations

from mininova.config import ServeConfig
from mininova.timeutil import now_utc, parse_iso


def is_up(row: dict, config: ServeConfig) -> bool:
    """A host is up while its agent is connected and its last heartbeat is recent enough."""
    if not row.get("connected") or not row.get("last_heartbeat"):
        return False
    age = (now_utc() - parse_iso(row["last_heartbeat"])).total_seconds()
    return age <= config.heartbeat_interval * config.missed_heartbeats_down


def seconds_up_left(row: dict, config: ServeConfig) -> float:
    """How long a host that is up stays up without another heartbeat (0 if it is down)."""
    if not row.get("connected") or not row.get("last_heartbeat"):
        return 0.0
    age = (now_utc() - parse_iso(row["last_heartbeat"])).total_seconds()
    return max(0.0, config.heartbeat_interval * config.missed_heartbeats_down - age)
