"""The controller process: store + bus + api, conductor, scheduler, consoleauth + agent hub."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from mininova.api.app import build_app
from mininova.api.identity.service import IdentityService
from mininova.api.services import Services
from mininova.bootstrap import Credentials, bootstrap, write_clouds_yaml, write_openrc
from mininova.bus import Bus
from mininova.config import ServeConfig
from mininova.paths import private_dir
from mininova.store import Store
from mininova.tls import ServerTls, ensure_server_tls, server_ssl_context
from mininova.trust import enrolment

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
        self.tls: ServerTls | None = None
        self.join_token = ""  # minted at start, printed in the join command
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
        private_dir(cfg.data_dir)
        private_dir(cfg.data_dir / "images")
        ssl_context: ssl.SSLContext | None = None
        if cfg.tls_enabled:
            self.tls = await asyncio.to_thread(self._ensure_tls)
            ssl_context = server_ssl_context(self.tls)
        self.store = Store(cfg.data_dir / "mininova.sqlite")
        await self.store.open()
        self.credentials = await bootstrap(self.store, cfg.data_dir)
        from mininova.api.image.store_ops import recover_uploads

        await recover_uploads(self.store, cfg)
        # No agent is connected to a controller that just started.
        await self.store.execute("UPDATE compute_nodes SET connected = 0")
        # `mininova token create` prints join commands for this URL (and the CA's pin).
        await self.store.set_setting("public_url", cfg.base_url)
        await enrolment.purge_join_tokens(self.store)
        self.join_token, _ = await enrolment.create_join_token(
            self.store, cfg.join_token_ttl or None, description="printed by mininova serve"
        )
        cacert = self.tls.ca_file if self.tls else None
        write_clouds_yaml(
            cfg.data_dir / "clouds.yaml", self.auth_url, self.credentials, cfg.region, cacert
        )
        write_openrc(cfg.data_dir / "openrc", self.auth_url, self.credentials, cfg.region, cacert)
        self.bus = Bus()
        identity = IdentityService(self.store, cfg.token_ttl)
        self.services = Services(cfg, self.store, self.bus, identity)
        hub = AgentHub(self.services)
        self.services.extra["hub"] = hub
        if self.tls is not None:
            hub.ca_pem = self.tls.ca_file.read_bytes()
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
        site = web.TCPSite(
            self.runner,
            cfg.listen_host,
            cfg.listen_port,
            reuse_address=True,
            ssl_context=ssl_context,
        )
        await site.start()
        self._tasks.append(asyncio.create_task(hub.monitor(), name="hub-monitor"))
        self._tasks.append(asyncio.create_task(conductor.recover(), name="conductor-recover"))
        log.info("mininova controller listening on %s", cfg.base_url)

    def _ensure_tls(self) -> ServerTls:
        """The cloud CA and a server certificate for every name clients may use."""
        cfg = self.config
        names = [urlsplit(cfg.base_url).hostname or "127.0.0.1"]
        if cfg.listen_host not in ("0.0.0.0", "::", ""):
            names.append(cfg.listen_host)
        names += ["127.0.0.1", "localhost", socket.gethostname()]  # duplicates are dropped
        cert = Path(cfg.tls_cert).expanduser() if cfg.tls_cert else None
        key = Path(cfg.tls_key).expanduser() if cfg.tls_key else None
        return ensure_server_tls(cfg.data_dir / "tls", names, cert, key)

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
