"""Agent side of a console tunnel (stub: the console work replaces it)."""

from __future__ import annotations

from mininova.virt.driver import ConsoleEndpoint


async def open_tunnel(tunnel_url: str, tunnel_token: str, endpoint: ConsoleEndpoint) -> None:
    """Connect to the guest's VNC endpoint, dial the controller's data websocket at
    `tunnel_url` (header `Authorization: Bearer <tunnel_token>`) and start relaying bytes in a
    background task. Returns once both legs are connected; raises on failure."""
    raise NotImplementedError("console tunnels are not implemented yet")
