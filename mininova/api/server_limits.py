"""Connection limits of the one HTTP port: header time, connection caps, upgraded links.

aiohttp's server has no limit on how many connections it holds nor on how long a client may
take to send its request line and headers, so a slowloris client (one header byte a second
on thousands of connections) could hold every file descriptor, agent endpoint included.
`LimitedTCPSite` listens like `web.TCPSite` but wraps every connection's `RequestHandler` in a
`GuardedConnection` that

* closes a connection whose request line + headers are not complete within `header_timeout`
  seconds: from the moment it was accepted, and on a keep-alive connection from the first
  byte of each next request (an idle keep-alive connection is aiohttp's: it closes after
  `keepalive_timeout`); the TLS handshake gets the same time (`ssl_handshake_timeout`);
* refuses a connection over `max_connections` in all or `max_connections_per_address` from
  one client address with a 503 and `Retry-After` (then closes it);
* takes a connection out of both counts once it is upgraded (a 101: agent links, agent
  tunnels, console and TCP-tunnel websockets). Each of those was authenticated before its
  101 and is bounded by its own limit (one link per host credential, the console and tunnel
  session limits), so a cloud of 1,000 agents does not fill `max_connections`, thirty
  students behind one NAT address keep their consoles open without eating the address's
  budget of plain HTTP connections, and an agent's tunnels never count against its own
  address. Until its 101 an agent's dial-in is an HTTP connection like any other: under a
  flood it may be refused and retries with its backoff; the header timer and the caps make
  every slot a flood holds expire or stay bounded per address, so it gets in.

`raise_open_file_limit` lifts the process's soft RLIMIT_NOFILE towards the hard one at start,
so the caps, not EMFILE on accept, are what a flood meets.

The guard reads two fields of aiohttp's `RequestHandler` (`_request_count`: requests parsed
so far; `_waiter`: set while it waits for the next request) because aiohttp offers no hook
for "headers complete"; tests/hardening/test_http_limits.py fails if they change meaning.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

RETRY_AFTER = 2  # s a refused client is asked to wait
LINGER = 1.0  # s a refused connection is read (and discarded) so the 503 is not lost to a RST
MAX_LINGERING = 64  # refused connections lingering at once; beyond that they close at once
LOG_EVERY = 10.0  # s between two log lines about refused or timed-out connections


class ServerLimits:
    """The limits and the live counts of one listening port."""

    def __init__(
        self,
        *,
        header_timeout: float,
        max_connections: int,
        max_connections_per_address: int,
    ) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.total = 0  # admitted HTTP (not upgraded) connections now open
        self.per_address: Counter[str] = Counter()  # the same, per client address
        self.lingering = 0
        self.refused = 0  # since start (for logs and tests)
        self.timed_out = 0
        self._last_log = 0.0
        self._unlogged = 0

    def refusal(self, address: str | None) -> str | None:
        """Why a new connection from `address` is refused, or None to admit it."""
        if self.max_connections > 0 and self.total >= self.max_connections:
            return f"{self.total} connections open (max_connections)"
        limit = self.max_connections_per_address
        if limit > 0 and address is not None and self.per_address[address] >= limit:
            return f"{limit} connections open from {address} (max_connections_per_address)"
        return None

    def note(self, message: str, *args: Any) -> None:
        """Log a refused or timed-out connection, at most once per LOG_EVERY seconds."""
        now = asyncio.get_running_loop().time()
        if now - self._last_log < LOG_EVERY:
            self._unlogged += 1
            return
        more = f" (and {self._unlogged} more since the last report)" if self._unlogged else ""
        self._last_log, self._unlogged = now, 0
        log.warning(message + more, *args)


def raise_open_file_limit(limits: ServerLimits, reserve: int = 256) -> int:
    """Raise the soft open-file limit to the hard one (the connection caps, the database,
    image files and agent links all need descriptors); warn when it stays below
    `max_connections` + `reserve`. The soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    needed = limits.max_connections + reserve
    if soft != resource.RLIM_INFINITY and limits.max_connections > 0 and soft < needed:
        log.warning(
            "open-file limit %d is below max_connections + %d = %d: a flood may meet EMFILE "
            "before the connection caps (raise LimitNOFILE / ulimit -n)",
            soft,
            reserve,
            needed,
        )
    return int(soft)


def _address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def _refusal_bytes() -> bytes:
    body = json.dumps(
        {
            "serviceUnavailable": {
                "code": 503,
                "message": "Too many connections to this cloud; retry later.",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedConnection(asyncio.Protocol):
    """One accepted connection: its aiohttp `RequestHandler` behind the header timer and the
    connection caps."""

    def __init__(self, handler: RequestHandler, limits: ServerLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.address: str | None = None
        self._admitted = False  # handed to aiohttp (connection_lost goes there too)
        self._counted = False  # in limits.total (and per_address): not upgraded yet
        self._refused = False
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        limits = self.limits
        self.address = _address(transport)
        why = limits.refusal(self.address)
        if why is not None:
            self._refuse(transport, why)
            return
        self._admitted = self._counted = True
        limits.total += 1
        if self.address is not None:
            limits.per_address[self.address] += 1
        self.handler.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the linger ends
        handler = self.handler
        parsed = handler._request_count
        handler.data_received(data)
        if handler._request_count != parsed:
            self._disarm()  # a request line and headers arrived
        elif self._timer is None and self._awaiting_request():
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def eof_received(self) -> bool | None:
        if self._refused:
            self._close()
            return None
        return self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            self.limits.lingering -= 1
            self._refused = False
            return
        if self._admitted:
            self._admitted = False
            self.leave_counts()
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self._refused:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self.handler.resume_writing()

    # -- the limits ---------------------------------------------------------------------

    def leave_counts(self) -> None:
        """This connection no longer counts (it was upgraded, or it closed)."""
        if not self._counted:
            return
        self._counted = False
        limits = self.limits
        limits.total -= 1
        if self.address is not None:
            limits.per_address[self.address] -= 1
            if limits.per_address[self.address] <= 0:
                del limits.per_address[self.address]

    def _awaiting_request(self) -> bool:
        waiter = self.handler._waiter
        return waiter is not None and not waiter.done()

    def _arm(self) -> None:
        timeout = self.limits.header_timeout
        if timeout > 0 and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        self.limits.timed_out += 1
        self.limits.note(
            "closed a connection from %s: no complete request headers within %gs (header_timeout)",
            self.address,
            self.limits.header_timeout,
        )
        self.handler.force_close()

    def _refuse(self, transport: asyncio.BaseTransport, why: str) -> None:
        limits = self.limits
        limits.refused += 1
        limits.note("refused a connection from %s: %s", self.address, why)
        self._refused = True
        limits.lingering += 1
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_refusal_bytes())
        if limits.lingering > MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        # Half-close and read what the client already sent for a moment: closing with unread
        # bytes would answer a RST that can destroy the 503 before the client reads it.
        transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(LINGER, self._close)

    def _close(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()


def connection_factory(
    server: Callable[[], RequestHandler], limits: ServerLimits
) -> Callable[[], GuardedConnection]:
    """The protocol factory for `loop.create_server`: aiohttp's handler, guarded."""

    def factory() -> GuardedConnection:
        return GuardedConnection(server(), limits)

    return factory


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if response.status != 101 or request.transport is None:
        return
    guard = request.transport.get_protocol()
    if isinstance(guard, GuardedConnection):
        guard.leave_counts()


class MalformedRequestLog(logging.Filter):
    """aiohttp logs every malformed request (a control character in a header, a bad request
    line) at ERROR with a traceback, though it answers 400 and nothing failed on our side:
    such records become one WARNING line naming the client and the parser's reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "malformed HTTP request from %s: %s", (peer, exc.message)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_MALFORMED_REQUEST_LOG = MalformedRequestLog()


def setup(app: web.Application) -> None:
    """Upgraded connections (101) leave the counts (see the module docstring); malformed
    requests are logged as one line."""
    app.on_response_prepare.append(_on_response_prepare)
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUEST_LOG)


class LimitedTCPSite(web.BaseSite):
    """`web.TCPSite` with `ServerLimits` on every connection it accepts."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limits: ServerLimits,
        ssl_context: Any = None,
        reuse_address: bool = True,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self.limits = limits
        self.host = host
        self.port = port
        self.reuse_address = reuse_address

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        handshake = self.limits.header_timeout if self._ssl_context is not None else None
        self._server = await loop.create_server(
            connection_factory(server, self.limits),
            self.host,
            self.port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self.reuse_address,
            ssl_handshake_timeout=handshake if handshake and handshake > 0 else None,
            family=socket.AF_UNSPEC,
        )
        if self._server.sockets:
            self.port = self._server.sockets[0].getsockname()[1]
