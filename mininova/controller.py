"""The controller process: store + bus + api, conductor, scheduler, consoleauth + agent hub."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from mininova.api.app import build_app
from mininova.api.identity.service import IdentityService
from mininova.api.services import Services
from mininova.bootstrap import Credentials, bootstrap, write_clouds_yaml, write_openrc
from mininova.bus import Bus
from mininova.config import ServeConfig
from mininova.store import Store

log = logging.getLogger(__name__)


@dataclass
class Controller:
    config: ServeConfig

    def __post_init__(self) -> None:
        self.store: Store | None = None
        self.bus: Bus | None = None
        self.services: Services | None = None
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.credentials: Credentials | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def auth_url(self) -> str:
        return self.config.base_url + "/identity/v3"

    async def start(self) -> None:
        from mininova.agenthub import AgentHub
        from mininova.conductor import Conductor
        from mininova.consoleauth import ConsoleAuth
        from mininova.consoleproxy import setup as setup_consoleproxy
        from mininova.scheduler import Scheduler

        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        (cfg.data_dir / "images").mkdir(exist_ok=True)
        self.store = Store(cfg.data_dir / "mininova.sqlite")
        await self.store.open()
        self.credentials = await bootstrap(self.store, cfg.data_dir)
        from mininova.api.image.store_ops import recover_uploads

        await recover_uploads(self.store, cfg)
        # No agent is connected to a controller that just started.
        await self.store.execute("UPDATE compute_nodes SET connected = 0")
        write_clouds_yaml(cfg.data_dir / "clouds.yaml", self.auth_url, self.credentials, cfg.region)
        write_openrc(cfg.data_dir / "openrc", self.auth_url, self.credentials, cfg.region)
        self.bus = Bus()
        identity = IdentityService(self.store, cfg.token_ttl)
        self.services = Services(cfg, self.store, self.bus, identity)
        hub = AgentHub(self.services)
        self.services.extra["hub"] = hub
        scheduler = Scheduler(self.services)
        conductor = Conductor(self.services, hub)
        consoleauth = ConsoleAuth(self.services)
        self.bus.register("scheduler", scheduler.handle)
        self.bus.register("conductor", conductor.handle)
        self.bus.register("consoleauth", consoleauth.handle)
        self.app = build_app(self.services)
        hub.setup(self.app)
        setup_consoleproxy(self.app, self.services)
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.listen_host, cfg.listen_port, reuse_address=True)
        await site.start()
        self._tasks.append(asyncio.create_task(hub.monitor(), name="hub-monitor"))
        self._tasks.append(asyncio.create_task(conductor.recover(), name="conductor-recover"))
        log.info("mininova controller listening on %s", cfg.base_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.services is not None:
            hub = self.services.extra.get("hub")
            if hub is not None:
                await hub.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.bus is not None:
            await self.bus.close()
        if self.store is not None:
            await self.store.close()
