"""Agent side of a console tunnel and of a TCP tunnel.

On `open_console_tunnel` the agent connects to the guest's local VNC endpoint (unix socket or
127.0.0.1:port), dials the controller's data websocket (`tunnel_url`, header
`Authorization: Bearer <one-time tunnel token>`) and relays bytes both ways in a background
task.

On `open_tcp_tunnel` it does the same with a TCP connection to one of the guest's own fixed
IPs (checked by the order handler against the driver's guest info) instead of the VNC socket.
The agent only ever dials out, so consoles and TCP tunnels work from behind NAT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mininova.relay import (
    SocketEnd,
    WebsocketsEnd,
    connect_socket_end,
    connect_unix_socket_end,
    relay,
)
from mininova.virt.driver import ConsoleEndpoint, ControllerAccess

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 20.0
MAX_MESSAGE = 16 * 1024 * 1024

_tunnels: set[asyncio.Task[None]] = set()


async def _connect_endpoint(endpoint: ConsoleEndpoint) -> tuple[SocketEnd, str]:
    if endpoint.unix_path is not None:
        end = await connect_unix_socket_end(str(endpoint.unix_path), "vnc")
        return end, f"unix:{endpoint.unix_path}"
    if endpoint.port is None:
        raise ValueError("console endpoint has neither a unix socket nor a port")
    host = endpoint.host or "127.0.0.1"
    return await connect_socket_end(host, endpoint.port, "vnc"), f"{host}:{endpoint.port}"


async def open_tunnel(
    tunnel_url: str,
    tunnel_token: str,
    endpoint: ConsoleEndpoint,
    access: ControllerAccess,
    *,
    keepalive: float = KEEPALIVE,
) -> None:
    """Connect to the guest's VNC endpoint, dial the controller's data websocket at
    `tunnel_url` (the host credential plus the one-time tunnel token as the capability) and
    start relaying bytes in a background task. Returns once both legs are connected."""
    async with asyncio.timeout(CONNECT_TIMEOUT):
        guest, where = await _connect_endpoint(endpoint)
    await start_relay(
        tunnel_url, tunnel_token, guest, guest, where, access, kind="console", keepalive=keepalive
    )


async def connect_tcp(address: str, port: int) -> tuple[SocketEnd, SocketEnd]:
    """A TCP connection to a guest's `address:port` (`open_tcp_tunnel`); OSError or
    TimeoutError when the guest does not accept it within CONNECT_TIMEOUT.

    The pair is one `SocketEnd` twice (its reading and its writing side), what `start_relay`
    takes."""
    async with asyncio.timeout(CONNECT_TIMEOUT):
        guest = await connect_socket_end(address, port, "guest")
    return guest, guest


async def start_relay(
    tunnel_url: str,
    tunnel_token: str,
    reader: SocketEnd,
    writer: SocketEnd,
    where: str,
    access: ControllerAccess,
    *,
    kind: str,
    keepalive: float = KEEPALIVE,
) -> None:
    """Dial the controller's data websocket for an already connected guest socket (`reader`
    and `writer`: its two sides, one `SocketEnd`) and relay both ways in a background task
    (counted by `active_tunnels`). Closes the socket when the dial fails; `kind` ("console",
    "tcp") only names the tunnel in the log."""
    from websockets.asyncio.client import connect

    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            conn = await connect(
                tunnel_url,
                **access.ws_ssl(tunnel_url),
                additional_headers=access.headers(tunnel_token),
                compression=None,
                max_size=MAX_MESSAGE,
                ping_interval=keepalive if keepalive > 0 else None,
                ping_timeout=keepalive if keepalive > 0 else None,
                open_timeout=CONNECT_TIMEOUT,
                proxy=None,
            )
    except BaseException:
        writer.close_now()
        raise

    guest_name = "vnc" if kind == "console" else "guest"
    reader.name = guest_name

    async def run() -> None:
        try:
            stats = await relay(reader, WebsocketsEnd(conn, "controller"))
            log.info(
                "%s tunnel to %s closed: %s (%s->controller %d B, controller->%s %d B)",
                kind,
                where,
                stats.reason,
                guest_name,
                stats.a_to_b,
                guest_name,
                stats.b_to_a,
            )
        except Exception:
            log.exception("%s tunnel to %s failed", kind, where)
        finally:
            writer.close_now()
            with contextlib.suppress(Exception):
                await conn.close()

    task = asyncio.create_task(run(), name=f"{kind}-tunnel {where}")
    _tunnels.add(task)
    task.add_done_callback(_tunnels.discard)
    log.info("%s tunnel opened: %s <-> controller", kind, where)


def active_tunnels() -> int:
    return len(_tunnels)


async def close_all() -> None:
    """Stop every running tunnel (agent shutdown)."""
    for task in list(_tunnels):
        task.cancel()
    await asyncio.gather(*list(_tunnels), return_exceptions=True)
