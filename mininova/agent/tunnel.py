"""Agent side of a console tunnel.

On `open_console_tunnel` the agent connects to the guest's local VNC endpoint (unix socket or
127.0.0.1:port), dials the controller's data websocket (`tunnel_url`, header
`Authorization: Bearer <one-time tunnel token>`) and relays bytes both ways in a background
task. The agent only ever dials out, so consoles work from behind NAT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mininova.relay import StreamEnd, WebsocketsEnd, relay
from mininova.virt.driver import ConsoleEndpoint, ControllerAccess

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 20.0
MAX_MESSAGE = 16 * 1024 * 1024

_tunnels: set[asyncio.Task[None]] = set()


async def _connect_endpoint(
    endpoint: ConsoleEndpoint,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    if endpoint.unix_path is not None:
        reader, writer = await asyncio.open_unix_connection(str(endpoint.unix_path))
        return reader, writer, f"unix:{endpoint.unix_path}"
    if endpoint.port is None:
        raise ValueError("console endpoint has neither a unix socket nor a port")
    host = endpoint.host or "127.0.0.1"
    reader, writer = await asyncio.open_connection(host, endpoint.port)
    return reader, writer, f"{host}:{endpoint.port}"


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
    from websockets.asyncio.client import connect

    async with asyncio.timeout(CONNECT_TIMEOUT):
        reader, writer, where = await _connect_endpoint(endpoint)
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
        writer.close()
        raise

    async def run() -> None:
        try:
            stats = await relay(StreamEnd(reader, writer, "vnc"), WebsocketsEnd(conn, "controller"))
            log.info(
                "console tunnel to %s closed: %s (vnc->controller %d B, controller->vnc %d B)",
                where,
                stats.reason,
                stats.a_to_b,
                stats.b_to_a,
            )
        except Exception:
            log.exception("console tunnel to %s failed", where)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await conn.close()

    task = asyncio.create_task(run(), name=f"console-tunnel {where}")
    _tunnels.add(task)
    task.add_done_callback(_tunnels.discard)
    log.info("console tunnel opened: %s <-> controller", where)


def active_tunnels() -> int:
    return len(_tunnels)


async def close_all() -> None:
    """Stop every running tunnel (agent shutdown)."""
    for task in list(_tunnels):
        task.cancel()
    await asyncio.gather(*list(_tunnels), return_exceptions=True)
