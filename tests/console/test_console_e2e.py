"""End to end: API -> console URL -> proxy -> agent tunnel -> fake VNC, and the refusals."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from mininova.store import console_tokens, instances
from tests.console.conftest import SERVERS, ConsoleEnv, token_of
from tests.console.rfbclient import connect, rfb_handshake
from tests.kit.clock import FakeClock
from tests.kit.wait import wait_for


async def test_console_roundtrip(env: ConsoleEnv) -> None:
    uuid = await env.server("vm-console")
    url = await env.console_url(uuid)
    assert url.startswith(env.base + "/ui/console.html?token=")
    token = token_of(url)
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, env.ws_url(token), headers={"Origin": env.base})
        assert ws.protocol == "binary"
        rfb = await rfb_handshake(ws)
        assert (rfb.width, rfb.height) == (320, 200)
        await rfb.request_update()
        (rect,) = await rfb.read_update()
        first = rect[4]
        assert len(set(first[i : i + 4] for i in range(0, len(first), 4))) > 3
        await rfb.key()
        await rfb.request_update(incremental=True)
        (rect2,) = await rfb.read_update()
        assert rect2[4] != first
        await ws.close()


def proxy_of(env: ConsoleEnv):  # noqa: ANN201
    return env.controller.consoleproxy


async def assert_no_tunnel_left(env: ConsoleEnv) -> None:
    from mininova.agent import tunnel

    await wait_for(
        lambda: not proxy_of(env).sessions and tunnel.active_tunnels() == 0,
        2,
        message=lambda: f"sessions {proxy_of(env).sessions} and tunnels to end",
    )
    assert proxy_of(env).sessions == {}
    assert tunnel.active_tunnels() == 0


async def refused_status(
    env: ConsoleEnv, url: str, headers: dict | None = None
) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await connect(session, url, headers=headers or {})
        async with session.get(
            url.replace("ws://", "http://"),
            headers={
                **(headers or {}),
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        ) as resp:
            body = await resp.json()
    assert info.value.status == resp.status
    return resp.status, body["error"]


async def test_legacy_action_at_any_microversion(env: ConsoleEnv) -> None:
    uuid = await env.server("legacy")
    for version in ("2.1", "2.5", "2.100"):
        status, body, _ = await env.api.post(
            f"{SERVERS}/{uuid}/action",
            json={"os-getVNCConsole": {"type": "novnc"}},
            version=version,
        )
        assert status == 200, body
        assert body["console"]["type"] == "novnc"
        assert body["console"]["url"].startswith(env.base + "/ui/console.html?token=")
    token = token_of(body["console"]["url"])
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, env.ws_url(token))
        assert (await rfb_handshake(ws)).name
        await ws.close()
    status, body, _ = await env.api.post(
        f"{SERVERS}/{uuid}/action", json={"os-getVNCConsole": {"type": "spice-html5"}}
    )
    assert status == 400, body


async def test_remote_console_api_errors(env: ConsoleEnv, member_api) -> None:  # noqa: ANN001
    uuid = await env.server("errs")
    path = f"{SERVERS}/{uuid}/remote-consoles"
    ok = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
    status, _, _ = await env.api.post(path, json=ok, version="2.5")
    assert status == 404
    for bad in (
        {"remote_console": {"protocol": "vnc", "type": "xvpvnc"}},
        {"remote_console": {"protocol": "spice", "type": "spice-html5"}},
        {"remote_console": {"protocol": "gopher", "type": "novnc"}},
        {"remote_console": {"protocol": "vnc"}},
        {"nothing": 1},
    ):
        status, body, _ = await env.api.post(path, json=bad, version="2.99")
        assert status == 400 and "badRequest" in body, (bad, body)
    status, body, _ = await member_api.post(path, json=ok, version="2.99")
    assert status == 404 and "itemNotFound" in body  # another project's server
    status, body, _ = await env.api.post(
        f"{SERVERS}/no-such/remote-consoles", json=ok, version="2.99"
    )
    assert status == 404
    status, _, _ = await env.api.post(f"{SERVERS}/{uuid}/action", json={"os-stop": None})
    assert status == 202
    await env.wait_status(uuid, "SHUTOFF")
    status, body, _ = await env.api.post(path, json=ok, version="2.99")
    assert status == 409 and "conflictingRequest" in body


async def test_info_endpoint_does_not_consume(env: ConsoleEnv) -> None:
    env.controller.config.console_single_use = True
    uuid = await env.server("info-vm")
    token = await env.token(uuid)
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(f"{env.base}/console/info?token={token}") as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["console"]["instance"] == {"uuid": uuid, "name": "info-vm"}
        ws = await connect(session, env.ws_url(token))
        await rfb_handshake(ws)
        async with session.get(f"{env.base}/console/info?token={token}") as resp:
            assert resp.status == 401 and (await resp.json())["error"]["reason"] == "used"
        status, error = await refused_status(env, env.ws_url(token))
        assert (status, error["reason"]) == (401, "used")
        await ws.close()
    await assert_no_tunnel_left(env)


@pytest.mark.parametrize("case", ["expired", "other_instance", "deleted", "origin", "forged"])
async def test_refusals(
    env: ConsoleEnv, case: str, caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    uuid = await env.server(f"refuse-{case}")
    token = await env.token(uuid)
    url, headers = env.ws_url(token), {"Origin": env.base}
    if case == "expired":
        fake_clock.advance(env.controller.config.console_token_ttl)  # expiry is inclusive
        want, logged = (401, "expired"), "expired"
    elif case == "other_instance":
        other = await env.server("other")
        url = env.ws_url(token, instance=other)
        want, logged = (403, "wrong_instance"), "wrong_instance"
    elif case == "deleted":
        status, _, _ = await env.api.delete(f"{SERVERS}/{uuid}")
        assert status == 204

        async def gone() -> bool:
            return (await env.api.get(f"{SERVERS}/{uuid}"))[0] == 404

        await wait_for(gone, 10, 0.05, f"{uuid} to be deleted")
        await env.controller.bus.drain()
        want, logged = (401, "invalid"), "unknown token"  # revoked on delete
        assert await console_tokens.list_tokens(env.controller.store, uuid) == []
    elif case == "origin":
        headers = {"Origin": "http://evil.example:8780"}
        want, logged = (403, "origin"), "cross-site"
    else:
        url = env.ws_url("A" * 43)
        want, logged = (401, "invalid"), "unknown token"
    with caplog.at_level(logging.WARNING):
        status, error = await refused_status(env, url, headers)
    assert (status, error["reason"]) == want, error
    assert error["message"]
    assert logged in caplog.text
    assert "console refused" in caplog.text
    assert token not in caplog.text  # tokens never reach the log
    await assert_no_tunnel_left(env)


async def test_session_limits(env: ConsoleEnv) -> None:
    env.controller.config.console_max_sessions_per_instance = 1
    uuid = await env.server("limited")
    token = await env.token(uuid)
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, env.ws_url(token))
        await rfb_handshake(ws)
        status, error = await refused_status(env, env.ws_url(token))
        assert (status, error["reason"]) == (429, "too_many_sessions")
        env.controller.config.console_max_sessions_per_instance = 4
        env.controller.config.console_max_sessions = 1
        status, error = await refused_status(env, env.ws_url(token))
        assert (status, error["reason"]) == (503, "too_many_sessions")
        await ws.close()
    await assert_no_tunnel_left(env)


async def test_browser_close_closes_tunnel_and_vnc(env: ConsoleEnv) -> None:
    uuid = await env.server("closer")
    token = await env.token(uuid)
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, env.ws_url(token))
        await rfb_handshake(ws)
        vnc = env.driver._guests[uuid].vnc.fake_vnc
        assert vnc.clients == 1
        await ws.close()
    await assert_no_tunnel_left(env)
    await wait_for(lambda: vnc.clients == 0, 2, message="the fake VNC client to leave")


async def test_guest_side_close_closes_browser(env: ConsoleEnv) -> None:
    uuid = await env.server("guest-closer")
    token = await env.token(uuid)
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, env.ws_url(token))
        rfb = await rfb_handshake(ws)
        status, _, _ = await env.api.post(f"{SERVERS}/{uuid}/action", json={"os-stop": None})
        assert status == 202  # the fake driver stops the guest's VNC server
        assert "CLOSE" in await rfb.io.wait_ended(10)
        assert ws.closed
    await assert_no_tunnel_left(env)


async def test_host_down_and_tunnel_timeout(
    env: ConsoleEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mininova.agent import tunnel

    uuid = await env.server("slow")
    token = await env.token(uuid)
    proxy = proxy_of(env)
    proxy.tunnel_timeout = 0.5

    async def never(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        await asyncio.sleep(30)  # a tunnel that never comes: outlasts the 0.5 s timeout

    monkeypatch.setattr(tunnel, "open_tunnel", never)
    async with aiohttp.ClientSession() as session:
        with caplog.at_level(logging.WARNING):
            ws = await connect(session, env.ws_url(token))
            msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert "timed out" in msg.extra
        assert "timed out" in caplog.text
        # A host without an agent link: refused with a reason, nothing left open.
        await instances.update(env.controller.store, uuid, host="ghost")
        ws = await connect(session, env.ws_url(token))
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and "not connected" in msg.extra
    await assert_no_tunnel_left(env)


async def test_late_or_forged_dial_in_is_refused(env: ConsoleEnv) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{env.base}/agent/tunnel/nope", headers={"Authorization": "Bearer x"}
        ) as resp:
            assert resp.status == 401  # no valid host credential: refused before any lookup


async def test_static_ui_and_novnc(env: ConsoleEnv) -> None:
    from tests.console.browser import NOVNC

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{env.base}/ui/console.html") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/html")
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            assert "console.js" in await resp.text()
        async with session.get(f"{env.base}/ui/console.js") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/javascript")
        for bad in (
            "/ui/node_modules/@novnc/novnc/package.json",
            "/ui/package.json",
            "/ui/%2e%2e/pyproject.toml",
            "/ui/novnc/../../pyproject.toml",
        ):
            async with session.get(env.base + bad) as resp:
                assert resp.status in (401, 404), bad  # aiohttp may normalize `..` away
                assert "[project]" not in await resp.text()
        async with session.get(f"{env.base}/ui", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "/ui/")
        if NOVNC.exists():
            async with session.get(f"{env.base}/ui/novnc/core/rfb.js") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/javascript")
                assert "export default class RFB" in await resp.text()
