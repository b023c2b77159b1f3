"""The agent's control websocket: URL, reconnect backoff, dialing and the read loop.

The framing, ids and error replies live in `mininova.protocol`; this module only moves frames
between a websocket and a Peer.
"""

from __future__ import annotations

import logging
import random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mininova.protocol.core import MAX_FRAME_BYTES
from mininova.protocol.peer import Peer
from mininova.virt.driver import ControllerAccess

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 0.5


def agent_ws_url(controller: str) -> str:
    """`http://ctl:8780` → `ws://ctl:8780/agent` (https → wss); ws(s) URLs are kept."""
    parts = urlsplit(controller.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"controller URL must be http(s)://host:port, got {controller!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/agent"):
        path += "/agent"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


class Backoff:
    """Exponential reconnect delay: 0.5 s doubling up to `maximum`, with jitter."""

    def __init__(self, maximum: float, initial: float = INITIAL_BACKOFF) -> None:
        self.initial = max(0.001, min(initial, maximum)) if maximum > 0 else 0.001
        self.maximum = max(maximum, self.initial)
        self._current = self.initial

    def next(self) -> float:
        """The delay to wait now (in [d/2, d] for the current step d); then step up."""
        delay = self._current
        self._current = min(self._current * 2, self.maximum)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._current = self.initial


def dial(url: str, secret: str, ping_interval: float, access: ControllerAccess) -> Any:
    """Connect (await it, or `async with`) with `secret` as bearer and `access`'s TLS trust."""
    return connect(
        url,
        **access.ws_ssl(url),
        additional_headers={"Authorization": f"Bearer {secret}"},
        ping_interval=ping_interval,
        ping_timeout=ping_interval,
        open_timeout=10,
        close_timeout=2,
        max_size=2 * MAX_FRAME_BYTES,
        compression=None,  # small JSON frames: deflate state would cost more than it saves
    )


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a failed connection attempt."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return f"controller rejected the join token (HTTP {status})"
        return f"controller refused the websocket (HTTP {status})"
    if isinstance(exc, ConnectionClosed):
        return f"link closed ({exc})"
    if isinstance(exc, OSError):
        return f"cannot reach controller: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


async def read_loop(ws: ClientConnection, peer: Peer) -> None:
    """Feed every incoming frame to the peer until the link closes; then close the peer."""
    try:
        async for message in ws:
            try:
                await peer.feed(message)
            except Exception:  # never let one frame end the link
                log.exception("error while handling a frame from the controller")
    except ConnectionClosed as exc:
        log.info("controller link closed: %s", exc)
    finally:
        peer.close("controller link closed")
