"""TCP tunnel fixtures: the console tests' controller + fake agent, whose guests all report
127.0.0.1 as their fixed IP, and TCP servers "in the guest" on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mininova.controller import Controller
from tests.conftest import ApiClient
from tests.console.conftest import ConsoleEnv, start_agent

GUEST_IP = "127.0.0.1"

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class GuestServer:
    """A TCP server on GUEST_IP, standing in for a service inside the guest."""

    port: int
    server: asyncio.AbstractServer
    connections: int = 0
    open_connections: int = 0
    received: list[bytes] = field(default_factory=list)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@contextlib.asynccontextmanager
async def guest_server(handler: StreamHandler = echo) -> AsyncIterator[GuestServer]:
    state: list[GuestServer] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        guest = state[0]
        guest.connections += 1
        guest.open_connections += 1
        try:
            await handler(reader, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            guest.open_connections -= 1
            writer.close()

    server = await asyncio.start_server(serve, GUEST_IP, 0)
    port = server.sockets[0].getsockname()[1]
    state.append(GuestServer(port, server))
    try:
        yield state[0]
    finally:
        server.close()
        await server.wait_closed()


async def allow_tcp(api: ApiClient) -> str:
    """An ingress TCP rule (every port) in the project's `default` security group, as the
    tunnel asks; its id."""
    _, body, _ = await api.get("/networking/v2.0/security-groups?name=default")
    (group,) = body["security_groups"]
    rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp"}
    status, body, _ = await api.post(
        "/networking/v2.0/security-group-rules", json={"security_group_rule": rule}
    )
    assert status == 201, body
    return str(body["security_group_rule"]["id"])


@pytest.fixture
async def env(controller: Controller, api: ApiClient, tmp_path: Path) -> AsyncIterator[ConsoleEnv]:
    agent, driver, task = await start_agent(controller, tmp_path / "agent", host="tunnel-node")
    driver.guest_address = GUEST_IP
    await allow_tcp(api)
    try:
        yield ConsoleEnv(controller, api, driver, agent)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        from mininova.agent import tunnel

        await tunnel.close_all()
        await driver.cleanup_host()
