"""Agent side of a console tunnel and of a TCP tunnel.

On `open_console_tunnel` the agent connects to the guest's local VNC endpoint (unix socket or
127.0.0.1:port), dials the controller at `tunnel_url` (its host credential plus the one-time
tunnel token) with an HTTP/1.1 `Upgrade: tcp` request (`mininova.relay.upgrade`: after the 101
the connection carries the tunnel's bytes as they are, no websocket framing) and relays bytes
both ways in a background task: two raw sockets, `SocketEnd` on both.

On `open_tcp_tunnel` it does the same with a TCP connection to one of the guest's own fixed
IPs (checked by the order handler against the driver's guest info) instead of the VNC socket.
The agent only ever dials out, so consoles and TCP tunnels work from behind NAT.
"""

from __future__ import annotations

import asyncio
import logging

from mininova.relay import (
    SocketEnd,
    connect_socket_end,
    connect_unix_socket_end,
    dial_raw_tunnel,
    relay,
)
from mininova.virt.driver import ConsoleEndpoint, ControllerAccess

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 20.0

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
    """Connect to the guest's VNC endpoint, dial the controller's raw tunnel at
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
    """Dial the controller's raw tunnel for an already connected guest socket (`reader` and
    `writer`: its two sides, one `SocketEnd`) and relay both ways in a background task
    (counted by `active_tunnels`). Closes the socket when the dial fails; `kind` ("console",
    "tcp") only names the tunnel in the log. `keepalive`: idle seconds before a keepalive
    chunk (and TCP keepalive probes) on the controller connection."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            conn = await dial_raw_tunnel(
                tunnel_url,
                access.headers(tunnel_token),
                "controller",
                ssl=access.ssl,  # the pinned CA (wss/https only), else default verification
                keepalive=keepalive,
            )
    except BaseException:
        writer.close_now()
        raise

    guest_name = "vnc" if kind == "console" else "guest"
    reader.name = guest_name

    async def run() -> None:
        try:
            stats = await relay(reader, conn)
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
            conn.close_now()

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
