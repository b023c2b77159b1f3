"""os-availability-zone views: the zone list, and the admin detail with each zone's hosts."""

from __future__ import annotations

from typing import Any

from mininova.api.compute.compute_hosts import INTERNAL_ZONE, Zones
from mininova.timeutil import nova_usec_time


def _zone(name: str, available: bool, hosts: Any = None) -> dict[str, Any]:
    return {"zoneName": name, "zoneState": {"available": available}, "hosts": hosts}


def zone_list(zones: Zones) -> list[dict[str, Any]]:
    """GET /os-availability-zone: the compute zones (not "internal"), without hosts."""
    return [_zone(z, True) for z in zones.available if z != INTERNAL_ZONE] + [
        _zone(z, False) for z in zones.unavailable if z != INTERNAL_ZONE
    ]


def zone_detail(zones: Zones) -> list[dict[str, Any]]:
    """GET /os-availability-zone/detail: "internal" and the available zones with their hosts'
    services, then the unavailable zones."""
    info: list[dict[str, Any]] = []
    for zone in [INTERNAL_ZONE, *zones.available]:
        hosts: dict[str, dict[str, Any]] = {}
        for svc in zones.services:
            if svc["zone"] == zone:
                hosts.setdefault(svc["host"], {})[svc["binary"]] = {
                    "available": svc["up"],
                    "active": not svc["disabled"],
                    "updated_at": nova_usec_time(svc["updated_at"]),
                }
        info.append(_zone(zone, True, hosts))
    info += [_zone(z, False) for z in zones.unavailable]
    return info
