"""The controller process: store + bus + api, conductor, scheduler, consoleauth + agent hub.

The composition root: it builds every service with explicit dependencies (store, config,
bus clients, the hub) and wires them onto the bus and the aiohttp app.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from mininova.agenthub import AgentHub
from mininova.api import server_limits
from mininova.api.app import build_app
from mininova.api.server_limits import LimitedTCPSite, ServerLimits
from mininova.api.services import Services
from mininova.bootstrap import Credentials, bootstrap, write_clouds_yaml, write_openrc
from mininova.bus import Bus
from mininova.conductor.rpcapi import SERVICE as conductor_service
from mininova.conductor.rpcapi import ConductorAPI
from mininova.config import ServeConfig
from mininova.consoleauth.client import SERVICE as consoleauth_service
from mininova.consoleauth.client import ConsoleAuthClient
from mininova.errors import StorageFull
from mininova.identity.service import IdentityService
from mininova.image.client import ImageClient
from mininova.image.service import SERVICE as image_service
from mininova.paths import private_dir
from mininova.scheduler.client import SERVICE as scheduler_service
from mininova.scheduler.client import SchedulerClient
from mininova.store import Store, hosts
from mininova.tls import ServerTls, ensure_server_tls, server_ssl_context
from mininova.trust import enrolment
from mininova.trust.capabilities import Capabilities

if TYPE_CHECKING:
    from mininova.consoleproxy.proxy import ConsoleProxy

log = logging.getLogger(__name__)


@dataclass
class Controller:
    config: ServeConfig
    # `mininova serve` migrates in a child process, so Alembic never stays in its memory.
    migrate_in_subprocess: bool = False

    def __post_init__(self) -> None:
        self.store: Store | None = None
        self.bus: Bus | None = None
        self.services: Services | None = None
        self.hub: AgentHub | None = None
        self.conductor: Any = None  # the Conductor, once started
        self.consoleproxy: ConsoleProxy | None = None
        self.app: web.Application | None = None
        self.runner: web.AppRunner | None = None
        self.limits: ServerLimits | None = None  # the HTTP port's connection limits and counts
        self.credentials: Credentials | None = None
        self.tls: ServerTls | None = None
        self.join_token = ""  # minted at start, printed in the join command
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def auth_url(self) -> str:
        return self.config.base_url + "/identity/v3"

    async def start(self) -> None:
        from mininova.conductor import Conductor
        from mininova.consoleauth import ConsoleAuth
        from mininova.consoleproxy import setup as setup_consoleproxy
        from mininova.image.service import ImageService
        from mininova.scheduler import Scheduler

        cfg = self.config
        private_dir(cfg.data_dir)
        private_dir(cfg.data_dir / "images")
        ssl_context: ssl.SSLContext | None = None
        if cfg.tls_enabled:
            # scale-out seam: all controllers must share ONE cloud CA (agents pin one)
            self.tls = await asyncio.to_thread(self._ensure_tls)
            ssl_context = server_ssl_context(self.tls)
        # scale-out seam: all controllers open one PostgreSQL URL; register a controllers row
        self.store = Store(cfg.store_url)
        await self.store.open(migrate_in_subprocess=self.migrate_in_subprocess)
        self.credentials = await bootstrap(self.store, cfg.data_dir)
        from mininova.image.store_ops import recover_uploads

        # scale-out seam: uploads of every controller are reset here; limit to this one's
        await recover_uploads(self.store, cfg)
        # No agent is connected to a controller that just started.
        # scale-out seam: only hosts whose controller_id is this controller (others are live)
        await hosts.disconnect_all(self.store)
        # `mininova token create` prints join commands for this URL (and the CA's pin).
        # scale-out seam: last starter wins; a shared public URL is a cluster setting
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
        # scale-out seam: the bus stays in-process; cross-controller traffic only via hub.call
        self.bus = bus = Bus()
        store = self.store
        # scale-out seam: in-memory grants; the agent's HTTP request may hit another controller
        capabilities = Capabilities()
        conductor_api = ConductorAPI(bus)
        consoleauth_client = ConsoleAuthClient(bus)
        self.hub = hub = AgentHub(store, cfg, reports=conductor_api)
        if self.tls is not None:
            hub.ca_pem = self.tls.ca_file.read_bytes()
        scheduler = Scheduler(store, cfg)
        images = ImageService(store, cfg)
        consoleauth = ConsoleAuth(store, cfg)
        conductor = Conductor(
            config=cfg,
            store=store,
            hub=hub,
            capabilities=capabilities,
            scheduler=SchedulerClient(bus),
            images=ImageClient(bus),
            consoleauth=consoleauth_client,
            conductor=conductor_api,
        )
        self.conductor = conductor  # tests drive its periodic tasks (resize auto-confirm)
        bus.register(scheduler_service, scheduler.handle)
        bus.register(conductor_service, conductor.handle)
        bus.register(consoleauth_service, consoleauth.handle)
        bus.register(image_service, images.handle)
        self.services = Services(
            config=cfg,
            store=store,
            bus=bus,
            identity=IdentityService.from_config(store, cfg),
            hub=hub,
            conductor=conductor_api,
            consoleauth=consoleauth_client,
            capabilities=capabilities,
        )
        self.app = build_app(self.services)
        hub.setup(self.app)
        self.consoleproxy = setup_consoleproxy(
            self.app, config=cfg, store=store, consoleauth=consoleauth_client, hub=hub
        )
        server_limits.setup(self.app)
        self.runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            keepalive_timeout=cfg.keepalive_timeout,
        )
        await self.runner.setup()
        self.limits = ServerLimits(
            header_timeout=cfg.header_timeout,
            max_connections=cfg.max_connections,
            max_connections_per_address=cfg.max_connections_per_address,
        )
        server_limits.raise_open_file_limit(self.limits)
        site = LimitedTCPSite(
            self.runner,
            cfg.listen_host,
            cfg.listen_port,
            limits=self.limits,
            reuse_address=True,
            ssl_context=ssl_context,
        )
        await site.start()
        # scale-out seam: plus a leader-only sweep (advisory lock) for dead controllers
        self._start_periodic("hub-monitor", hub.monitor)
        # scale-out seam: recover() must only fail work this controller owned
        self._tasks.append(asyncio.create_task(conductor.recover(), name="conductor-recover"))
        if cfg.reclaim_instance_interval > 0:  # soft delete: the reaper of SOFT_DELETED servers
            self._start_periodic("reclaim", conductor.reclaim_loop)
        if cfg.shelved_offload_time > 0:
            self._start_periodic("shelved-offload-poller", conductor.run_shelved_poller)
        self._start_periodic("resize-auto-confirm", conductor.poll_unconfirmed_resizes)
        if cfg.token_purge_interval > 0:  # expired Keystone tokens (and their cache entries)
            self._start_periodic("token-purge", self.services.identity.purge_loop)
        log.info("mininova controller listening on %s", cfg.base_url)

    def _start_periodic(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(self._supervised(name, loop), name=name))

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a periodic loop for the life of the process: one that fails (the disk is full,
        the database went away) is logged and started again after a heartbeat interval,
        instead of being gone until a restart (a dead heartbeat sweep reads every host down)."""
        delay = max(self.config.heartbeat_interval, 0.1)
        while True:
            try:
                await loop()
                return
            except StorageFull as exc:
                log.error("%s: %s; starting it again in %gs", name, exc.message, delay)
            except Exception:
                log.exception("%s failed; starting it again in %gs", name, delay)
            await asyncio.sleep(delay)

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
        if self.hub is not None:
            await self.hub.close()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.bus is not None:
            await self.bus.close()
        if self.conductor is not None:
            await self.conductor.close()  # its network pusher, before the store closes
        if self.store is not None:
            await self.store.close()
