"""`SchedulerClient`: the typed bus client of the scheduler (what the conductor calls)."""

from __future__ import annotations

from dataclasses import fields

from mininova.bus import Bus
from mininova.scheduler import Request

SERVICE = "scheduler"


class SchedulerClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def select_and_claim(self, request: Request) -> str:
        """The chosen host, with the claim made; raises NoValidHost."""
        params = {f.name: getattr(request, f.name) for f in fields(request)}
        return await self.bus.call(SERVICE, "select_and_claim", **params)

    async def release(self, instance_uuid: str) -> None:
        await self.bus.call(SERVICE, "release", instance_uuid=instance_uuid)
