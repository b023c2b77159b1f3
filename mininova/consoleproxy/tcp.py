"""TCP to a guest through its agent: `mininova tunnel`, `mininova ssh`, `mininova port-forward`.

    client --GET /tunnel/tcp/<server id>?port=P (X-Auth-Token, websocket)--> controller
        controller: token -> project, the server (404 for another project's, admin: any),
        ACTIVE (409), its first fixed IP from the instance's addresses (409 without one)
    controller --hub.call(host, "open_tcp_tunnel", {uuid, address, port, tunnel_url,
                                                    tunnel_token})--> agent
        agent: address is one of that guest's own fixed IPs (driver), connects address:P
    agent  --GET /agent/tcp-tunnel/<id> (host credential + one-time tunnel token,
                                         Upgrade: tcp; then raw bytes)--> controller
        controller upgrades the client's websocket and relays its binary frames' payloads
        to and from the agent's raw connection
        (mininova.relay: bounded buffers, backpressure; either side's close closes both)

The agent's order and its dial-in happen BEFORE the client's websocket upgrade, so every
refusal is an HTTP status with a JSON body `{"error": {"code", "reason", "message"}}` the CLI
prints: 400 bad port, 401/403 token or role, 403 (reason `security_group`) no ingress rule
of the server's security groups allows the port, 404 server, 409 not ACTIVE / no fixed IP,
429/503 session limits, 502 the guest refused or did not answer (reason `unreachable`) or the
agent refused the address, 503 host not connected, 504 setup timed out. No Keystone token
reaches the agent: it gets a one-time tunnel token for one dial-in, as the console does.

Limits, top-level keys of serve's `--config` TOML file (they land in `ServeConfig.extra`):
`tcp_tunnel_max_sessions` (default 256 per controller), `tcp_tunnel_max_per_instance` (64),
`tcp_tunnel_max_per_project` (64: one project cannot hold every tunnel).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mininova import instance_states as st
from mininova.agenthub import AgentHub
from mininova.compute.api import get_server
from mininova.config import ServeConfig
from mininova.consoleproxy.ends import AiohttpWsEnd
from mininova.consoleproxy.proxy import MAX_MESSAGE, Session, _peer, _refusal, accept_dialin, ws_url
from mininova.errors import NotFound
from mininova.identity.service import AuthFailed, IdentityService
from mininova.network.security_groups import tunnel_refusal
from mininova.protocol.core import ADDRESS_REFUSED, UNREACHABLE, ProtocolError
from mininova.relay import End, relay
from mininova.store import Store

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 15.0  # the agent's guest connect (10 s) plus its dial-in
DEFAULT_MAX_SESSIONS = 256
DEFAULT_MAX_PER_INSTANCE = 64
DEFAULT_MAX_PER_PROJECT = 64
WRITE_ROLES = ("member", "admin")

_AGENT_STATUS = {
    UNREACHABLE: (502, "unreachable"),
    ADDRESS_REFUSED: (502, "address_refused"),
    "host_unavailable": (503, "host_unavailable"),
    "link_down": (503, "host_unavailable"),
    "not_found": (409, "not_running"),
    "timeout": (504, "timeout"),
}


@dataclass(frozen=True)
class _Caller:
    """`compute.api.Caller` for a tunnel request."""

    user_id: str
    project_id: str
    is_admin: bool
    request_id: str


def fixed_address(addresses: Any) -> str | None:
    """The address a tunnel goes to: the instance's first fixed IPv4, else its first IPv6."""
    items = [a for a in addresses or () if isinstance(a, dict) and a.get("addr")]
    for version in (4, 6):
        for item in items:
            if int(item.get("version") or 4) == version:
                return str(item["addr"])
    return None


class TcpTunnels:
    """The `/tunnel/tcp/{server_id}` client endpoint and the agents' `/agent/tcp-tunnel/{id}`."""

    def __init__(
        self,
        *,
        config: ServeConfig,
        store: Store,
        hub: AgentHub | None,
        setup_timeout: float = SETUP_TIMEOUT,
    ) -> None:
        self.config = config
        self.store = store
        self.hub = hub
        self.setup_timeout = setup_timeout
        # Its own validations, uncached: a revoked or disabled token cannot open a tunnel.
        self.identity = IdentityService(store, config.token_ttl)
        self.identity.cache_ttl = 0
        # scale-out seam: pending tunnels are in-process, as the console's
        self.sessions: dict[str, Session] = {}
        self.per_instance: Counter[str] = Counter()
        self.per_project: Counter[str] = Counter()

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/tunnel/tcp/{server_id}", self.handle_client)
        app.router.add_get("/agent/tcp-tunnel/{id}", self.handle_agent)
        app.on_shutdown.append(self._on_shutdown)

    @property
    def keepalive(self) -> float | None:
        value = float(self.config.console_keepalive or 0)
        return value if value > 0 else None

    def _limit(self, key: str, default: int) -> int:
        try:
            return int(self.config.extra.get(key, default))
        except (TypeError, ValueError):
            return default

    async def _on_shutdown(self, app: web.Application) -> None:
        for session in list(self.sessions.values()):
            if not session.agent_end.done():
                session.agent_end.cancel()
            session.done.set()

    # -- the client ------------------------------------------------------------------------

    async def _caller(self, request: web.Request) -> _Caller | web.Response:
        token = request.headers.get("X-Auth-Token", "")
        if not token:
            return _refusal(401, "unauthorized", "An X-Auth-Token header is required.")
        try:
            info = await self.identity.validate(token)
        except AuthFailed as exc:
            return _refusal(401, "unauthorized", str(exc))
        roles = {r["name"].lower() for r in info.roles}
        if not roles.intersection(WRITE_ROLES):
            return _refusal(403, "forbidden", "A TCP tunnel needs the member or admin role.")
        return _Caller(
            user_id=info.user_id,
            project_id=info.project_id,
            is_admin="admin" in roles,
            request_id="req-tunnel-" + secrets.token_hex(8),
        )

    async def handle_client(self, request: web.Request) -> web.StreamResponse:
        caller = await self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        raw = request.query.get("port", "")
        port = int(raw) if raw.isdigit() and len(raw) <= 5 else 0
        if not 1 <= port <= 65535:
            return _refusal(400, "bad_port", f"port must be an integer in 1..65535, not {raw!r}.")
        uuid = request.match_info["server_id"]
        try:
            inst = await get_server(self.store, caller, uuid)
        except NotFound as exc:
            return _refusal(404, "not_found", exc.message)
        status = st.status(inst["vm_state"], inst["task_state"])
        if status != "ACTIVE" or not inst["host"]:
            return _refusal(409, "not_active", f"Server {uuid} is {status}, not ACTIVE.")
        address = fixed_address(inst["addresses"])
        if address is None:
            return _refusal(409, "no_address", f"Server {uuid} has no fixed IP address.")
        refused = await tunnel_refusal(self.store, inst, port)
        if refused is not None:  # the server's security groups, as its host's firewall would
            return _refusal(403, "security_group", refused)
        max_per = self._limit("tcp_tunnel_max_per_instance", DEFAULT_MAX_PER_INSTANCE)
        if self.per_instance[uuid] >= max_per:
            return _refusal(429, "too_many_sessions", "Too many TCP tunnels to this server.")
        project = inst["project_id"]
        max_project = self._limit("tcp_tunnel_max_per_project", DEFAULT_MAX_PER_PROJECT)
        if self.per_project[project] >= max_project:
            return _refusal(429, "too_many_sessions", "Too many TCP tunnels for this project.")
        if len(self.sessions) >= self._limit("tcp_tunnel_max_sessions", DEFAULT_MAX_SESSIONS):
            return _refusal(503, "too_many_sessions", "Too many TCP tunnels.")
        ws = web.WebSocketResponse(
            heartbeat=self.keepalive, compress=False, max_msg_size=MAX_MESSAGE
        )
        if not ws.can_prepare(request).ok:
            return _refusal(400, "not_websocket", "A websocket upgrade was expected.")

        tunnel_token = secrets.token_urlsafe(32)
        session = Session(
            id=secrets.token_urlsafe(16),
            instance_uuid=uuid,
            host=inst["host"],
            tunnel_token_hash=hashlib.sha256(tunnel_token.encode()).hexdigest(),
            agent_end=asyncio.get_running_loop().create_future(),
        )
        self.sessions[session.id] = session
        self.per_instance[uuid] += 1
        self.per_project[project] += 1
        label = f"tcp tunnel {session.id[:8]} to {uuid} port {port}"
        try:
            agent = await self._open(session, tunnel_token, address, port)
            if isinstance(agent, web.Response):
                log.warning("%s from %s failed: %s", label, _peer(request), agent.text)
                return agent
            session.state = "paired"
            await ws.prepare(request)
            log.info("%s on %s opened (%s)", label, session.host, _peer(request))
            stats = await relay(AiohttpWsEnd(ws, "client"), agent)
            log.info(
                "%s closed after %.0fs: %s (client->guest %d B, guest->client %d B)",
                label,
                time.monotonic() - session.started,
                stats.reason,
                stats.a_to_b,
                stats.b_to_a,
            )
            return ws
        finally:
            session.state = "closed"
            if not session.agent_end.done():
                session.agent_end.cancel()
            elif not session.agent_end.cancelled():
                with contextlib.suppress(Exception):
                    await session.agent_end.result().close("tcp tunnel ended")
            session.done.set()
            self.sessions.pop(session.id, None)
            self.per_instance[uuid] -= 1
            if self.per_instance[uuid] <= 0:
                del self.per_instance[uuid]
            self.per_project[project] -= 1
            if self.per_project[project] <= 0:
                del self.per_project[project]
            if ws.prepared and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()

    async def _open(
        self, session: Session, tunnel_token: str, address: str, port: int
    ) -> End | web.Response:
        """Order the agent to connect and dial back; its connection, or the refusal."""
        path = f"/agent/tcp-tunnel/{session.id}"
        params = {
            "uuid": session.instance_uuid,
            "address": address,
            "port": port,
            # scale-out seam: THIS controller's own advertised URL so the agent dials here
            "tunnel_url": ws_url(self.config.base_url) + path,
            "tunnel_path": path,
            "tunnel_token": tunnel_token,
        }
        if self.hub is None:
            return _refusal(503, "host_unavailable", "No agent hub on this controller.")
        try:
            async with asyncio.timeout(self.setup_timeout):
                await self.hub.call(
                    session.host, "open_tcp_tunnel", params, timeout=self.setup_timeout
                )
                return await session.agent_end
        except TimeoutError:
            return _refusal(
                504, "timeout", f"The tunnel setup timed out after {self.setup_timeout:g}s."
            )
        except ProtocolError as exc:
            status, reason = _AGENT_STATUS.get(exc.code, (502, "agent_error"))
            return _refusal(status, reason, exc.message)

    # -- the agent's dial-in ---------------------------------------------------------------

    async def handle_agent(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.match_info["id"])
        return await accept_dialin(
            request, session, store=self.store, keepalive=self.keepalive, kind="TCP"
        )


TCP_TUNNELS: web.AppKey[TcpTunnels] = web.AppKey("tcp_tunnels", TcpTunnels)


def setup_tcp_tunnels(
    app: web.Application, *, config: ServeConfig, store: Store, hub: AgentHub | None
) -> TcpTunnels:
    tunnels = TcpTunnels(config=config, store=store, hub=hub)
    tunnels.setup(app)
    app[TCP_TUNNELS] = tunnels
    return tunnels
