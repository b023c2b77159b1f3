"""In process: GET /tunnel/tcp/{server} -> controller -> agent (fake driver) -> a TCP server
on the guest's fixed IP (127.0.0.1 here), and every refusal a client can meet."""

from __future__ import annotations

import asyncio
import hashlib
import os

import aiohttp
import pytest

from mininova.consoleproxy.tcp import TCP_TUNNELS
from mininova.protocol.core import ProtocolError
from tests.conftest import ApiClient
from tests.console.conftest import SERVERS, ConsoleEnv
from tests.kit.wait import wait_for
from tests.tunnel.conftest import GUEST_IP, allow_tcp, guest_server


def tunnel_url(env: ConsoleEnv, server: str, port: object) -> str:
    return env.base.replace("http://", "ws://") + f"/tunnel/tcp/{server}?port={port}"


async def open_tunnel(
    session: aiohttp.ClientSession, env: ConsoleEnv, server: str, port: object, token: str
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(
        tunnel_url(env, server, port), headers={"X-Auth-Token": token}, max_msg_size=0
    )


async def refusal(env: ConsoleEnv, server: str, port: object, token: str | None) -> tuple[int, str]:
    """The status and message a client gets instead of a tunnel (websocket upgrade refused)."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    if token is not None:
        headers["X-Auth-Token"] = token
    async with aiohttp.ClientSession() as session:
        async with session.get(
            tunnel_url(env, server, port).replace("ws://", "http://"), headers=headers
        ) as resp:
            body = await resp.json()
    (error,) = body.values()
    return resp.status, error["message"]


async def read_exactly(ws: aiohttp.ClientWebSocketResponse, n: int) -> bytes:
    data = b""
    while len(data) < n:
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        data += msg.data
    return data


async def assert_no_tunnel_left(env: ConsoleEnv) -> None:
    from mininova.agent import tunnel

    tunnels = env.controller.app[TCP_TUNNELS]
    await wait_for(
        lambda: not tunnels.sessions and tunnel.active_tunnels() == 0,
        5,
        message=lambda: f"sessions {tunnels.sessions}, {tunnel.active_tunnels()} agent tunnels",
    )


async def test_bytes_round_trip_both_ways(env: ConsoleEnv) -> None:
    uuid = await env.server("echo-vm")
    _, body, _ = await env.api.get(f"{SERVERS}/{uuid}")
    addresses = body["server"]["addresses"]
    assert [a["addr"] for net in addresses.values() for a in net] == [GUEST_IP]
    async with guest_server() as guest, aiohttp.ClientSession() as session:
        # a client cannot pick the address: only the port is read
        ws = await open_tunnel(session, env, uuid, f"{guest.port}&address=10.9.9.9", env.api.token)
        await ws.send_bytes(b"hello through the agent\n")
        assert await read_exactly(ws, 24) == b"hello through the agent\n"
        await ws.send_bytes(b"again\n")
        assert await read_exactly(ws, 6) == b"again\n"
        assert guest.connections == 1
        await ws.close()
        # the client's close reaches the guest: its connection ends
        await wait_for(lambda: guest.open_connections == 0, 5, message="guest connection to end")
    await assert_no_tunnel_left(env)


async def test_large_transfer_intact(env: ConsoleEnv) -> None:
    uuid = await env.server("bulk-vm")
    payload = os.urandom(8 * 1024 * 1024 + 123)
    async with guest_server() as guest, aiohttp.ClientSession() as session:
        ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)

        async def send() -> None:
            for i in range(0, len(payload), 100_000):
                await ws.send_bytes(payload[i : i + 100_000])

        sender = asyncio.create_task(send())
        echoed = await read_exactly(ws, len(payload))
        await sender
        assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()
        await ws.close()
    await assert_no_tunnel_left(env)


async def test_guest_close_reaches_client(env: ConsoleEnv) -> None:
    async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-fake\r\n")
        await writer.drain()
        line = await reader.readline()
        writer.write(b"bye " + line)
        await writer.drain()
        writer.close()

    uuid = await env.server("closing-vm")
    async with guest_server(greeter) as guest, aiohttp.ClientSession() as session:
        ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)
        assert await read_exactly(ws, 14) == b"SSH-2.0-fake\r\n"
        await ws.send_bytes(b"me\n")
        assert await read_exactly(ws, 7) == b"bye me\n"
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        assert ws.closed
    await assert_no_tunnel_left(env)


async def test_refusals(env: ConsoleEnv, member_api: ApiClient) -> None:
    uuid = await env.server("guarded-vm")
    async with guest_server() as guest:
        port = guest.port
        # another project's server: as the compute API answers, it does not exist
        status, message = await refusal(env, uuid, port, member_api.token)
        assert status == 404 and uuid in message
        assert (await member_api.get(f"{SERVERS}/{uuid}"))[0] == 404
        assert (await refusal(env, "no-such-server", port, env.api.token))[0] == 404
        for bad in (0, 65536, "x", "-1", ""):
            status, message = await refusal(env, uuid, bad, env.api.token)
            assert status == 400 and "1..65535" in message, (bad, message)
        assert (await refusal(env, uuid, port, None))[0] == 401
        assert (await refusal(env, uuid, port, "not-a-token"))[0] == 401
        # the member's own server works for the member; the admin reaches any project's
        image = await member_api.upload_image()
        status, body, _ = await member_api.post(
            SERVERS,
            json={"server": {"name": "m", "imageRef": image, "flavorRef": "1", "networks": "none"}},
            version="2.37",
        )
        assert status == 202, body
        mine = body["server"]["id"]
        await member_api.wait_server(mine, "ACTIVE")
        await allow_tcp(member_api)
        async with aiohttp.ClientSession() as session:
            for token in (member_api.token, env.api.token):
                ws = await open_tunnel(session, env, mine, port, token)
                await ws.send_bytes(b"ping")
                assert await read_exactly(ws, 4) == b"ping"
                await ws.close()
    # nothing listens on the guest's port any more: the guest refused, the client is told
    status, message = await refusal(env, uuid, port, env.api.token)
    assert status == 502 and "Connection refused" in message and GUEST_IP in message
    status, _, _ = await env.api.post(f"{SERVERS}/{uuid}/action", json={"os-stop": None})
    assert status == 202
    await env.wait_status(uuid, "SHUTOFF")
    status, message = await refusal(env, uuid, port, env.api.token)
    assert status == 409 and "SHUTOFF" in message
    await assert_no_tunnel_left(env)


async def test_agent_connects_only_to_the_guests_own_address(env: ConsoleEnv) -> None:
    uuid = await env.server("strict-vm")
    orders = env.agent.handlers
    params = {
        "uuid": uuid,
        "port": 22,
        "tunnel_url": "ws://127.0.0.1:9/agent/tcp-tunnel/x",
        "tunnel_token": "t",
    }
    for address in ("10.1.2.3", "192.168.0.1", "::1"):
        with pytest.raises(ProtocolError) as info:
            await orders.open_tcp_tunnel({**params, "address": address})
        assert info.value.code == "address_refused", address
    for bad in ({"address": "localhost"}, {"address": GUEST_IP, "port": 0}):
        with pytest.raises(ValueError):
            await orders.open_tcp_tunnel({**params, **bad})


async def test_session_limits(env: ConsoleEnv) -> None:
    extra = env.controller.config.extra
    uuid = await env.server("limited-vm")
    async with guest_server() as guest, aiohttp.ClientSession() as session:
        extra["tcp_tunnel_max_per_instance"] = 1
        ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)
        status, message = await refusal(env, uuid, guest.port, env.api.token)
        assert (status, message) == (429, "Too many TCP tunnels to this server.")
        extra["tcp_tunnel_max_per_instance"] = 8
        extra["tcp_tunnel_max_sessions"] = 1
        status, message = await refusal(env, uuid, guest.port, env.api.token)
        assert (status, message) == (503, "Too many TCP tunnels.")
        extra.pop("tcp_tunnel_max_sessions")
        extra["tcp_tunnel_max_per_project"] = 1  # the project's one tunnel is open
        status, message = await refusal(env, uuid, guest.port, env.api.token)
        assert (status, message) == (429, "Too many TCP tunnels for this project.")
        await ws.close()
        await assert_no_tunnel_left(env)
        assert not env.controller.app[TCP_TUNNELS].per_project
        ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)
        await ws.send_bytes(b"ok")
        assert await read_exactly(ws, 2) == b"ok"
        await ws.close()
    await assert_no_tunnel_left(env)


async def test_security_groups_must_allow_the_port(env: ConsoleEnv) -> None:
    """No ingress TCP rule for the port in the server's groups: 403 before any agent order,
    with the command that fixes it; the rule for exactly that port opens the tunnel."""
    groups = "/networking/v2.0/security-groups"
    rules = "/networking/v2.0/security-group-rules"
    _, body, _ = await env.api.get(f"{rules}?protocol=tcp&direction=ingress")
    for rule in body["security_group_rules"]:  # what the fixture allowed
        assert (await env.api.delete(f"{rules}/{rule['id']}"))[0] == 204
    uuid = await env.server("closed-vm")
    async with guest_server() as guest:
        status, message = await refusal(env, uuid, guest.port, env.api.token)
        assert status == 403, message
        assert uuid in message and f"TCP port {guest.port}" in message
        assert (
            f"openstack security group rule create --protocol tcp --dst-port {guest.port} default"
            in message
        )
        assert guest.connections == 0
        _, body, _ = await env.api.get(f"{groups}?name=default")
        group_id = body["security_groups"][0]["id"]
        for prefix, allowed in (("10.0.0.0/8", False), ("192.168.122.0/24", True)):
            rule = {
                "security_group_id": group_id,
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": guest.port,
                "port_range_max": guest.port,
                "remote_ip_prefix": prefix,
            }
            status, body, _ = await env.api.post(rules, json={"security_group_rule": rule})
            assert status == 201, body
            if not allowed:  # not from the agent's host address
                assert (await refusal(env, uuid, guest.port, env.api.token))[0] == 403
        async with aiohttp.ClientSession() as session:
            ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)
            await ws.send_bytes(b"open")
            assert await read_exactly(ws, 4) == b"open"
            await ws.close()
    await assert_no_tunnel_left(env)


async def test_websocket_dial_in_of_older_agents(
    env: ConsoleEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that dials in with a websocket (before `Upgrade: tcp`) is still relayed."""
    from websockets.asyncio.client import connect

    from mininova.agent import tunnel
    from mininova.relay import WebsocketsEnd

    class LegacyEnd(WebsocketsEnd):
        def close_now(self) -> None:
            asyncio.ensure_future(self.close())

    async def websocket_dial(url: str, headers: dict, name: str, **_: object) -> LegacyEnd:
        return LegacyEnd(await connect(url, additional_headers=headers, compression=None), name)

    monkeypatch.setattr(tunnel, "dial_raw_tunnel", websocket_dial)
    uuid = await env.server("legacy-agent-vm")
    payload = os.urandom(300_000)
    async with guest_server() as guest, aiohttp.ClientSession() as session:
        ws = await open_tunnel(session, env, uuid, guest.port, env.api.token)
        await ws.send_bytes(payload)
        assert await read_exactly(ws, len(payload)) == payload
        await ws.close()
    await assert_no_tunnel_left(env)
