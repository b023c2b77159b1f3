"""`ImageClient`: the typed bus client of the image service (used by the conductor)."""

from __future__ import annotations

from mininova.bus import Bus
from mininova.image.service import SERVICE


class ImageClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def set_image_status(self, image_id: str, status: str, expect: str | None = None) -> bool:
        """Move an image to `status` (only from `expect` when given). True if a row changed."""
        return await self.bus.call(
            SERVICE, "set_image_status", image_id=image_id, status=status, expect=expect
        )

    async def delete_image(self, image_id: str) -> None:
        """Remove an image record and its file (a shelved server's snapshot, at unshelve)."""
        await self.bus.call(SERVICE, "delete_image", image_id=image_id)
