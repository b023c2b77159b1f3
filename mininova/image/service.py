"""The image service on the bus: what other services (the conductor) may do to images."""

from __future__ import annotations

from typing import Any

from mininova.config import ServeConfig
from mininova.image.store_ops import delete_image, set_image_status
from mininova.store import Store

SERVICE = "image"


class ImageService:
    def __init__(self, store: Store, config: ServeConfig | None = None) -> None:
        self.store = store
        self.config = config

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        if method == "set_image_status":
            return await set_image_status(self.store, **params)
        if method == "delete_image" and self.config is not None:
            return await delete_image(self.store, self.config, **params)
        raise LookupError(f"image has no method {method!r}")
