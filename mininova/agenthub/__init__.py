"""The controller's end of the agent links: one websocket per agent at `/agent`.

Agents dial out and authenticate with their host credential, or with a join token that the
first hello trades for one (`mininova.trust.enrolment`). A host name is bound to its credential:
a link that claims an enrolled name without it is refused and the live link keeps its orders
and consoles. The hub records each host's inventory
in `compute_nodes` at hello; heartbeats are noted in memory and written for all hosts in one
statement per sweep (every heartbeat interval), which is also when silent links are closed. It
relays the agent's reports to the conductor over the bus and
lets the conductor send orders to a host with `call(host, method, params)`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from mininova import timeutil
from mininova.config import ServeConfig
from mininova.protocol import PROTOCOL_VERSION, ProtocolError, reports
from mininova.protocol.peer import Peer
from mininova.store import Store, hosts
from mininova.timeutil import now_iso
from mininova.trust import enrolment
from mininova.trust.enrolment import EnrolmentRefused

log = logging.getLogger(__name__)


# Orders whose result is a GuestInfo (its power state and addresses reach the database), and
# the one whose result is a list of them.
GUEST_INFO_RESULTS = frozenset({"spawn", "rebuild", "finish_resize", "finish_revert_resize"})


def checked_result(method: str, result: Any) -> Any:
    """An order's result with what would reach the database checked as reports are: a
    malformed power state or address list is left out (the conductor then keeps what it has);
    a list_guests answer keeps its well-formed guests (ProtocolError if it is not a list)."""
    if method in GUEST_INFO_RESULTS:
        return (reports.guest(result) or {}) if result else {}
    if method == "list_guests":
        try:
            return reports.guests(result)
        except ValueError as exc:
            raise ProtocolError("invalid_result", f"list_guests: {exc}") from None
    return result


class HostUnavailable(ProtocolError):
    """No live link to that host."""

    def __init__(self, host: str) -> None:
        super().__init__("host_unavailable", f"compute host {host} is not connected")


class ConductorReports(Protocol):
    """Where the hub sends what agents report (the conductor's bus client in production)."""

    def host_connected(self, host: str, guests: list[Any], destroy_orphans: bool) -> None: ...

    def sync_power_states(self, host: str, guests: list[Any]) -> None: ...

    def instance_event(self, host: str, uuid: str, power_state: int) -> None: ...


class AgentHub:
    def __init__(self, store: Store, config: ServeConfig, reports: ConductorReports) -> None:
        self.store = store
        self.config = config
        self.reports = reports
        # scale-out seam: links are in-process; compute_nodes.controller_id says who holds one
        self.links: dict[str, Peer] = {}
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self.ca_pem: bytes | None = None  # the cloud CA agents pin (None without TLS)
        self._last_seen: dict[str, float] = {}  # host → monotonic time of its last frame
        self._heard: set[str] = set()  # hosts that sent a heartbeat since the last sweep
        self._state_versions: dict[str, int] = {}  # host → network state version it takes

    def setup(self, app: web.Application) -> None:
        app.router.add_get("/agent", self.handle)
        app.router.add_get("/agent/ca.pem", self.ca_certificate)

    async def ca_certificate(self, request: web.Request) -> web.Response:
        """The public CA certificate; agents check it against the pinned fingerprint."""
        if self.ca_pem is None:
            raise web.HTTPNotFound(text="this controller does not use TLS")
        return web.Response(body=self.ca_pem, content_type="application/x-pem-file")

    async def _authenticate(self, request: web.Request) -> dict[str, str]:
        """{"kind": "host", "host": name} or {"kind": "join", "secret": token}; else refused."""
        header = request.headers.get("Authorization", "")
        # secrets are URL-safe ASCII; undecodable bytes arrive as surrogates: refuse them
        secret = enrolment.bearer_secret(header) if header.isascii() else ""
        kind = enrolment.kind_of(secret)
        if kind == "host":
            return {"kind": kind, "host": await enrolment.host_for_credential(self.store, secret)}
        if kind == "join":
            await enrolment.check_join_token(self.store, secret)
            return {"kind": kind, "secret": secret}
        raise EnrolmentRefused("no join token or host credential")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            auth = await self._authenticate(request)
        except EnrolmentRefused as exc:
            log.warning("refused agent link from %s: %s", request.remote, exc)
            return web.json_response({"error": {"code": 401, "message": str(exc)}}, status=401)
        ws = web.WebSocketResponse(
            # No websocket pings from this side: `sweep` already closes a link whose agent
            # stopped heartbeating, and the agent pings to notice a dead controller.
            max_msg_size=8 * 1024 * 1024,
            # Orders and reports are small JSON frames: per-link deflate state (~100 KiB)
            # would cost more memory than the bytes it saves.
            compress=False,
        )
        await ws.prepare(request)
        state: dict[str, str] = {}

        async def send(frame: str) -> None:
            await ws.send_str(frame)

        peer = Peer(send, {}, name="agent")
        peer.handlers = {
            "hello": lambda p: self._hello(p, peer, ws, state, auth, request.remote or "?"),
            "heartbeat": lambda p: self._heartbeat(p, state),
            "instance_event": lambda p: self._instance_event(p, state),
        }
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await peer.feed(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            peer.close("agent disconnected")
            host = state.get("host")
            if host and self.links.get(host) is peer:
                del self.links[host]
                self._sockets.pop(host, None)
                self._last_seen.pop(host, None)
                self._heard.discard(host)
                # scale-out seam: add AND controller_id = me: the host may have moved on
                await hosts.node_disconnected(self.store, host, now_iso())
                log.warning("agent %s disconnected", host)
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, code: str, reason: str) -> None:
        """Refuse a hello: the agent gets the reason, then the link closes."""

        async def close_soon() -> None:
            await asyncio.sleep(0.2)  # let the error reply go out first
            await ws.close(code=4003, message=reason.encode()[:120])

        asyncio.get_running_loop().create_task(close_soon())
        raise ProtocolError(code, reason)

    async def _hello(
        self,
        params: dict[str, Any],
        peer: Peer,
        ws: web.WebSocketResponse,
        state: dict[str, str],
        auth: dict[str, str],
        remote: str,
    ) -> dict[str, Any]:
        version = params.get("protocol")
        if type(version) is not int or version != PROTOCOL_VERSION:  # `true` is not 1
            raise ProtocolError("unsupported_version", f"controller speaks {PROTOCOL_VERSION}")
        host = reports.host_name(params.get("host"))
        if "host" in state or "hello" in state:
            raise ProtocolError("invalid_frame", "hello was already sent on this link")
        res = reports.resources(params.get("resources"))
        guests = reports.guests(params.get("guests") or [])
        state["hello"] = host  # before the first await: a second hello meanwhile is refused
        reply: dict[str, Any] = {}
        if auth["kind"] == "host" and auth["host"] != host:
            reason = f"this credential belongs to host {auth['host']!r}, not {host!r}"
            log.warning("refused hello from %s: %s", remote, reason)
            await self._refuse(ws, "host_mismatch", reason)
        if auth["kind"] == "join":
            try:
                reply["credential"] = await enrolment.enrol_host(self.store, auth["secret"], host)
            except EnrolmentRefused as exc:
                log.warning("refused enrolment of host %r from %s: %s", host, remote, exc)
                await self._refuse(ws, "enrolment_refused", str(exc))
            log.info("host %s enrolled from %s", host, remote)
        driver = reports.clean_text(params.get("driver", "")) or ""
        now = now_iso()
        # scale-out seam: also take the host's lease: controller_id = me, lease_expires_at
        async with self.store.transaction() as tx:
            await hosts.node_connected(tx, host, res, driver, now)
            await hosts.credential_seen(tx, host, now)
        # scale-out seam: the old link may be on another controller: NOTIFY it to drop it
        old = self._sockets.get(host)
        state["host"] = host
        self.links[host] = peer
        self._state_versions[host] = reports.network_state_version(
            params.get("network_state_versions")
        )
        self._sockets[host] = ws
        self._last_seen[host] = timeutil.monotonic()
        if old is not None and old is not ws:
            await old.close(message=b"replaced by a newer connection")
        log.info("agent %s connected (%s driver)", host, driver)
        self.reports.host_connected(
            host=host,
            guests=guests,
            destroy_orphans=params.get("destroy_orphans") is True,
        )
        return {**reply, "heartbeat_interval": self.config.heartbeat_interval}

    def _host(self, state: dict[str, str]) -> str:
        host = state.get("host")
        if host is None:
            raise ProtocolError("invalid_frame", "send hello first")
        return host

    async def _heartbeat(self, params: dict[str, Any], state: dict[str, str]) -> dict:
        host = self._host(state)
        self._last_seen[host] = timeutil.monotonic()
        self._heard.add(host)
        guests = params.get("guests")
        if isinstance(guests, list):
            self.reports.sync_power_states(host=host, guests=reports.guests(guests))
        return {}

    async def _instance_event(self, params: dict[str, Any], state: dict[str, str]) -> dict:
        host = self._host(state)
        uuid = reports.clean_text(params.get("uuid"), 64)
        power_state = reports.power_state(params.get("power_state"))
        if not uuid or power_state is None:
            raise ValueError("instance_event needs uuid (string) and power_state (a power state)")
        self.reports.instance_event(host=host, uuid=uuid, power_state=power_state)
        return {}

    async def revoke_host(self, host: str) -> bool:
        """Revoke a host's credential and drop its live link (compute service delete)."""
        revoked = await enrolment.revoke_host(self.store, host)
        # scale-out seam: a revoked host's link may be on another controller: NOTIFY it
        ws = self._sockets.get(host)
        if ws is not None:
            await ws.close(code=4003, message=b"host credential revoked")
        if revoked:
            log.warning("credential of host %s revoked", host)
        return revoked

    def network_state_version(self, host: str) -> int:
        """The newest `network_sync` state version the host's agent said it takes (1 if none)."""
        return self._state_versions.get(host, 1)

    def is_connected(self, host: str) -> bool:
        # scale-out seam: local only; cluster-wide = a live lease in compute_nodes
        return host in self.links

    async def call(
        self, host: str, method: str, params: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> Any:
        # scale-out seam: no local link: forward to the lease holder's channel
        peer = self.links.get(host)
        if peer is None or peer.closed:
            raise HostUnavailable(host)
        result = await peer.call(method, params or {}, timeout=timeout)
        return checked_result(method, result)

    async def monitor(self) -> None:
        """Every heartbeat interval: write the heartbeats heard (one statement), and close
        links whose agent stopped heartbeating (a half-open TCP connection)."""
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            await self.sweep()

    async def sweep(self) -> None:
        config = self.config
        heard, self._heard = self._heard, set()
        # Only hosts whose link is still ours: a late heartbeat must not revive a closed one.
        await hosts.record_heartbeats(
            self.store, sorted(h for h in heard if h in self.links), now_iso()
        )
        limit = config.heartbeat_interval * config.missed_heartbeats_down
        now = timeutil.monotonic()
        for host, seen in list(self._last_seen.items()):
            if now - seen > limit and host in self._sockets:
                log.warning("agent %s missed heartbeats for %.0fs; closing its link", host, limit)
                await self._sockets[host].close()

    async def close(self) -> None:
        for ws in list(self._sockets.values()):
            await ws.close(message=b"controller shutting down")
