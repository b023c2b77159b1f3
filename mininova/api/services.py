"""What API handlers can reach: the store, the bus clients and a few in-process services.

The HTTP layer's typed container, built by the controller (the composition root). Services
below the API (scheduler, conductor, agent hub, consoleauth) never see it: they take their
dependencies explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mininova.agenthub import AgentHub
from mininova.api.rendered_servers import RenderedServers
from mininova.api.response_cache import ResponseCache
from mininova.bus import Bus
from mininova.conductor.rpcapi import ConductorAPI
from mininova.config import ServeConfig
from mininova.consoleauth.client import ConsoleAuthClient
from mininova.identity.service import IdentityService
from mininova.store import Store
from mininova.trust.capabilities import Capabilities


@dataclass
class Services:
    config: ServeConfig
    store: Store
    bus: Bus
    identity: IdentityService
    hub: AgentHub | None  # None only when an app is built without agents
    conductor: ConductorAPI
    consoleauth: ConsoleAuthClient
    capabilities: Capabilities = field(default_factory=Capabilities)
    response_cache: ResponseCache = field(default_factory=ResponseCache)
    rendered_servers: RenderedServers = field(default_factory=RenderedServers)
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def base_url(self) -> str:
        return self.config.base_url

    def url(self, path: str) -> str:
        return self.base_url + path
