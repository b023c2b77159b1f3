"""The shared byte relay (L0, pure asyncio): bounded pipes with backpressure and stream ends.

Used by the console proxy (browser websocket <-> agent tunnel) and by the agent's tunnel
(controller websocket <-> the guest's VNC socket).
"""

from mininova.relay.core import (
    DEFAULT_CAPACITY,
    DEFAULT_CHUNK,
    AsyncPipe,
    End,
    Pipe,
    PipeClosed,
    RelayStats,
    relay,
)
from mininova.relay.ends import (
    ChunkedEnd,
    SocketEnd,
    StreamEnd,
    WebsocketsEnd,
    connect_socket_end,
    connect_unix_socket_end,
    dial_raw_tunnel,
)
from mininova.relay.upgrade import UpgradeRefused

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_CHUNK",
    "AsyncPipe",
    "ChunkedEnd",
    "End",
    "Pipe",
    "PipeClosed",
    "RelayStats",
    "SocketEnd",
    "StreamEnd",
    "WebsocketsEnd",
    "connect_socket_end",
    "connect_unix_socket_end",
    "dial_raw_tunnel",
    "UpgradeRefused",
    "relay",
]
