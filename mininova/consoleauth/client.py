"""`ConsoleAuthClient`: the typed bus client of consoleauth (API, console proxy, conductor)."""

from __future__ import annotations

from typing import Any

from mininova.bus import Bus

SERVICE = "consoleauth"


class ConsoleAuthClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def authorize(self, instance_uuid: str, console_type: str = "novnc") -> dict[str, Any]:
        """A new console token: `{"token", "expires_at", "instance_uuid", "console_type"}`."""
        return await self.bus.call(
            SERVICE, "authorize", instance_uuid=instance_uuid, console_type=console_type
        )

    async def check(self, token: str, instance_uuid: str | None, consume: bool) -> dict[str, Any]:
        """The token's record; raises ConsoleAuthError."""
        return await self.bus.call(
            SERVICE, "check", token=token, instance_uuid=instance_uuid, consume=consume
        )

    def revoke_instance(self, uuid: str) -> None:
        """Cast: drop every console token of an instance."""
        self.bus.cast(SERVICE, "revoke_instance", uuid=uuid)
