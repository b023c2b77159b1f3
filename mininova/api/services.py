"""What API handlers can reach: the store, the bus and a few in-process services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mininova.api.identity.service import IdentityService
from mininova.bus import Bus
from mininova.config import ServeConfig
from mininova.store import Store
from mininova.trust.capabilities import Capabilities


@dataclass
class Services:
    config: ServeConfig
    store: Store
    bus: Bus
    identity: IdentityService
    extra: dict[str, Any] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def url(self, path: str) -> str:
        return self.base_url + path
