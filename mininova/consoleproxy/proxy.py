"""nova-novncproxy: browser websocket <-> the agent's raw tunnel, on the controller's port.

    browser (noVNC) --GET /console/websockify?token=T--> proxy
        proxy: Origin check, consoleauth.check(T) -> (instance, host), session limits
        proxy --hub.call(host, "open_console_tunnel", {uuid, tunnel_url, tunnel_token})--> agent
    agent  --GET /agent/tunnel/<id>  (host credential + one-time tunnel token,
                                      Upgrade: tcp; mininova.relay.upgrade)--> proxy
        proxy answers 101, pairs the browser's websocket with the agent's raw connection and
        relays bytes both ways (mininova.relay); a websocket dial-in (agents before the raw
        tunnel) is still accepted

The controller never connects to a compute host: the agent dials the tunnel, so
consoles work when hosts are behind NAT. The browser's leg gets websocket keepalive pings
every `console_keepalive` seconds (idle NAT/proxies cut silent connections), the agent's raw
leg TCP keepalive probes after as many idle seconds.

`GET /console/info?token=T` answers the console page's pre-check (instance name, or the reason
the token is refused) without consuming a single-use token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from mininova.agenthub import AgentHub
from mininova.config import ServeConfig
from mininova.consoleauth import (
    EXPIRED,
    INSTANCE_GONE,
    INVALID,
    NOT_RUNNING,
    USED,
    WRONG_INSTANCE,
    ConsoleAuthError,
)
from mininova.consoleauth.client import ConsoleAuthClient
from mininova.consoleproxy.ends import AiohttpRawEnd, AiohttpWsEnd
from mininova.consoleproxy.origin import check_origin
from mininova.protocol.core import CAPABILITY_HEADER
from mininova.relay import ChunkedEnd, End, relay
from mininova.relay.ends import READ_SIZE, set_keepalive, set_read_size
from mininova.relay.upgrade import UPGRADE, is_raw_upgrade
from mininova.store import Store
from mininova.trust import enrolment

log = logging.getLogger(__name__)

TUNNEL_SETUP_TIMEOUT = 10.0
MAX_MESSAGE = 16 * 1024 * 1024

_REASON_STATUS = {
    INVALID: 401,
    EXPIRED: 401,
    USED: 401,
    WRONG_INSTANCE: 403,
    INSTANCE_GONE: 404,
    NOT_RUNNING: 409,
}


def _refusal(status: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "reason": reason, "message": message}},
        status=status,
        headers={"Cache-Control": "no-store"},
    )


def _peer(request: web.Request) -> str:
    return request.remote or "?"


def ascii_header(request: web.Request, name: str) -> str:
    """A header that carries a secret (credentials and tokens are URL-safe ASCII); "" when
    absent or not ASCII (aiohttp keeps undecodable bytes as surrogates), i.e. refused."""
    value = request.headers.get(name, "")
    return value if value.isascii() else ""


class DialinSession(Protocol):
    """What a tunnel's agent dial-in needs of its session (console or TCP)."""

    state: str
    host: str
    tunnel_token_hash: str
    agent_end: asyncio.Future
    done: asyncio.Event


async def accept_dialin(
    request: web.Request,
    session: DialinSession | None,
    *,
    store: Store,
    keepalive: float | None,
    kind: str,
) -> web.StreamResponse:
    """The agent's dial-in for a pending `kind` tunnel: its host credential, the one-time
    tunnel token and the tunnel's host must all match; then the connection joins the session
    (as the session's `agent_end`) until the session is done: a raw connection after
    `Upgrade: tcp` (`mininova.relay.upgrade`), else a websocket (older agents)."""
    credential = enrolment.bearer_secret(ascii_header(request, "Authorization"))
    token = ascii_header(request, CAPABILITY_HEADER)
    digest = hashlib.sha256(token.encode()).hexdigest()
    try:
        dialer = await enrolment.host_for_credential(store, credential)
    except enrolment.EnrolmentRefused as exc:
        log.warning("%s tunnel dial-in from %s refused: %s", kind, _peer(request), exc)
        return _refusal(401, "bad_host_credential", "Invalid host credential.")
    if session is None or session.state != "pending" or session.agent_end.done():
        log.warning(
            "%s tunnel dial-in from %s refused: unknown or finished tunnel", kind, _peer(request)
        )
        return _refusal(404, "unknown_tunnel", f"No such {kind} tunnel.")
    if not token or not hmac.compare_digest(digest, session.tunnel_token_hash):
        log.warning("%s tunnel dial-in from %s refused: bad tunnel token", kind, _peer(request))
        return _refusal(401, "bad_tunnel_token", f"Invalid {kind} tunnel token.")
    if dialer != session.host:
        log.warning(
            "%s tunnel dial-in from %s refused: host %s is not %s",
            kind,
            _peer(request),
            dialer,
            session.host,
        )
        return _refusal(403, "wrong_host", f"This {kind} tunnel belongs to another host.")
    if is_raw_upgrade(request.headers.get("Connection", ""), request.headers.get("Upgrade", "")):
        session.tunnel_token_hash = ""  # one-time: no second dial-in with the same token
        return await _accept_raw(request, session, keepalive)
    ws = web.WebSocketResponse(heartbeat=keepalive, compress=False, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        return _refusal(400, "not_websocket", "A websocket or tcp upgrade was expected.")
    session.tunnel_token_hash = ""  # one-time: no second dial-in with the same token
    await ws.prepare(request)
    if session.agent_end.done():
        await ws.close(message=f"{kind} session ended".encode())
        return ws
    session.agent_end.set_result(AiohttpWsEnd(ws, "agent"))
    await session.done.wait()
    return ws


async def _accept_raw(
    request: web.Request, session: DialinSession, keepalive: float | None
) -> web.StreamResponse:
    """101 to `Upgrade: tcp`; the connection is then the session's `ChunkedEnd` on an
    `AiohttpRawEnd` (keepalive chunks every `keepalive` idle seconds).

    The end becomes the connection's payload parser before the 101 is sent (the agent sends
    nothing before it read the 101), so every later byte reaches it; the handler stays until
    the session is done, then the connection closes (no keep-alive after a tunnel)."""
    resp = web.StreamResponse(
        status=101,
        reason="Switching Protocols",
        headers={"Connection": "Upgrade", "Upgrade": UPGRADE},
    )
    resp.force_close()
    end = AiohttpRawEnd(request, "agent")
    request.protocol.set_parser(end)
    await resp.prepare(request)
    await resp.write(b"")  # sends the 101 now (aiohttp holds headers for the body)
    if request.transport is not None:
        set_keepalive(request.transport, keepalive or 0)
        set_read_size(request.transport, READ_SIZE)
    chunked = ChunkedEnd(end, "agent", keepalive or 0)
    if session.agent_end.done():
        await chunked.close()
        return resp
    session.agent_end.set_result(chunked)
    try:
        await session.done.wait()
    finally:
        await chunked.close()
    return resp


def ws_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :]
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :]
    return base_url


@dataclass
class Session:
    id: str
    instance_uuid: str
    host: str
    tunnel_token_hash: str
    agent_end: asyncio.Future[End]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    state: str = "pending"


class ConsoleProxy:
    def __init__(
        self,
        *,
        config: ServeConfig,
        store: Store,
        consoleauth: ConsoleAuthClient,
        hub: AgentHub | None,
        tunnel_timeout: float = TUNNEL_SETUP_TIMEOUT,
    ) -> None:
        self.config = config
        self.store = store
        self.consoleauth = consoleauth
        self.hub = hub
        self.tunnel_timeout = tunnel_timeout
        # scale-out seam: pending tunnels are in-process; add a console_sessions row
        self.sessions: dict[str, Session] = {}
        self.per_instance: Counter[str] = Counter()
        self.per_project: Counter[str] = Counter()

    @property
    def keepalive(self) -> float | None:
        value = float(self.config.console_keepalive or 0)
        return value if value > 0 else None

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/console/websockify", self.handle_browser)
        app.router.add_get("/console/info", self.handle_info)
        app.router.add_get("/agent/tunnel/{id}", self.handle_tunnel)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, app: web.Application) -> None:
        for session in list(self.sessions.values()):
            if not session.agent_end.done():
                session.agent_end.cancel()
            session.done.set()

    # -- token checks ------------------------------------------------------------------

    async def _check(
        self, request: web.Request, token: str, consume: bool
    ) -> dict[str, Any] | web.Response:
        instance = request.query.get("instance") or None
        try:
            return await self.consoleauth.check(token, instance, consume)
        except ConsoleAuthError as exc:
            status = _REASON_STATUS.get(exc.reason, 401)
            log.warning(
                "console refused for %s: %s%s",
                _peer(request),
                exc.reason,
                f" ({exc.detail})" if exc.detail else "",
            )
            return _refusal(status, exc.reason, exc.message)

    async def handle_info(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        info = await self._check(request, token, consume=False)
        if isinstance(info, web.Response):
            return info
        return web.json_response(
            {
                "console": {
                    "instance": {"uuid": info["instance_uuid"], "name": info["name"]},
                    "type": info["console_type"],
                    "expires_at": info["expires_at"],
                    "single_use": info.get("single_use", False),
                }
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- browser side ------------------------------------------------------------------

    async def handle_browser(self, request: web.Request) -> web.StreamResponse:
        extra = self.config.extra.get("console_allowed_origins") or ()
        if isinstance(extra, str):
            extra = [extra]
        allowed, why = check_origin(request.headers.get("Origin"), self.config.base_url, extra)
        if not allowed:
            log.warning("console refused for %s: cross-site websocket: %s", _peer(request), why)
            return _refusal(403, "origin", f"Cross-site console connection refused: {why}")
        token = request.query.get("token", "")
        info = await self._check(request, token, consume=False)
        if isinstance(info, web.Response):
            return info
        ws = web.WebSocketResponse(
            protocols=("binary",),
            heartbeat=self.keepalive,
            compress=False,
            max_msg_size=MAX_MESSAGE,
        )
        if not ws.can_prepare(request).ok:
            return _refusal(400, "not_websocket", "A websocket upgrade was expected.")
        uuid, host = info["instance_uuid"], info["host"]
        project = info.get("project_id") or ""
        refused = self._over_limit(request, uuid, project)
        if refused is not None:
            return refused
        tunnel_token = secrets.token_urlsafe(32)
        session = Session(
            id=secrets.token_urlsafe(16),
            instance_uuid=uuid,
            host=host,
            tunnel_token_hash=hashlib.sha256(tunnel_token.encode()).hexdigest(),
            agent_end=asyncio.get_running_loop().create_future(),
        )
        # Counted in the same step as the check (no await between): parallel connects
        # cannot all pass the limits before any of them is counted.
        self.sessions[session.id] = session
        self.per_instance[uuid] += 1
        self.per_project[project] += 1
        try:
            if info.get("single_use"):
                info = await self._check(request, token, consume=True)
                if isinstance(info, web.Response):
                    return info
            await ws.prepare(request)
            agent = await self._open_tunnel(session, tunnel_token, ws)
            if agent is None:
                return ws
            session.state = "paired"
            log.info(
                "console session %s for instance %s on %s opened (%s)",
                session.id[:8],
                uuid,
                host,
                _peer(request),
            )
            stats = await relay(AiohttpWsEnd(ws, "browser"), agent)
            log.info(
                "console session %s closed after %.0fs: %s (browser->agent %d B,"
                " agent->browser %d B)",
                session.id[:8],
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
            session.done.set()
            self.sessions.pop(session.id, None)
            self.per_instance[uuid] -= 1
            if self.per_instance[uuid] <= 0:
                del self.per_instance[uuid]
            self.per_project[project] -= 1
            if self.per_project[project] <= 0:
                del self.per_project[project]
            if not ws.closed and ws.prepared:
                with contextlib.suppress(Exception):
                    await ws.close()

    def _over_limit(self, request: web.Request, uuid: str, project: str) -> web.Response | None:
        """The refusal when the instance or its project (429) or the controller (503) has all
        the console sessions it may have, else None."""
        # scale-out seam: this limit is per controller, not per cloud
        if self.per_instance[uuid] >= self.config.console_max_sessions_per_instance:
            log.warning(
                "console refused for %s: instance %s already has %d sessions",
                _peer(request),
                uuid,
                self.per_instance[uuid],
            )
            return _refusal(
                429, "too_many_sessions", "Too many console sessions for this instance."
            )
        if self.per_project[project] >= self.config.console_max_sessions_per_project:
            log.warning(
                "console refused for %s: project %s already has %d sessions",
                _peer(request),
                project,
                self.per_project[project],
            )
            return _refusal(429, "too_many_sessions", "Too many console sessions for this project.")
        if len(self.sessions) >= self.config.console_max_sessions:
            log.warning(
                "console refused for %s: %d console sessions open (limit)",
                _peer(request),
                len(self.sessions),
            )
            return _refusal(503, "too_many_sessions", "Too many console sessions.")
        return None

    async def _open_tunnel(
        self, session: Session, tunnel_token: str, ws: web.WebSocketResponse
    ) -> End | None:
        """Ask the agent to dial back; returns its connection, or closes the browser's."""
        hub = self.hub
        path = f"/agent/tunnel/{session.id}"
        params = {
            "uuid": session.instance_uuid,
            # scale-out seam: use THIS controller's own advertised URL so the agent dials here
            "tunnel_url": ws_url(self.config.base_url) + path,
            "tunnel_path": path,
            "tunnel_token": tunnel_token,
        }
        reason = ""
        try:
            if hub is None:
                raise RuntimeError("no agent hub")
            async with asyncio.timeout(self.tunnel_timeout):
                await hub.call(
                    session.host, "open_console_tunnel", params, timeout=self.tunnel_timeout
                )
                return await session.agent_end
        except TimeoutError:
            reason = f"console tunnel setup timed out after {self.tunnel_timeout:g}s"
        except asyncio.CancelledError:
            if session.agent_end.cancelled() and asyncio.current_task().cancelling() == 0:
                reason = "console session cancelled"
            else:
                raise
        except Exception as exc:  # HostUnavailable, ProtocolError from the agent, ...
            message = getattr(exc, "message", None) or str(exc)
            reason = f"could not open the console tunnel: {message}"
        log.warning(
            "console session %s for instance %s on %s failed: %s",
            session.id[:8],
            session.instance_uuid,
            session.host,
            reason,
        )
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close(
                    code=WSCloseCode.TRY_AGAIN_LATER,
                    message=reason.encode("utf-8", "replace")[:120],
                )
        return None

    # -- agent side --------------------------------------------------------------------

    async def handle_tunnel(self, request: web.Request) -> web.StreamResponse:
        # scale-out seam: unknown id: look up its controller and relay (or redirect)
        session = self.sessions.get(request.match_info["id"])
        return await accept_dialin(
            request, session, store=self.store, keepalive=self.keepalive, kind="console"
        )
