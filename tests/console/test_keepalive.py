"""A silent console survives behind a relay that drops idle connections: 15 s of silence, a
6 s idle timer and a 2 s keepalive (the defaults, 20 s against a common 60 s timer, scale alike)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from mininova.config import ServeConfig
from mininova.controller import Controller
from tests.conftest import ApiClient, login
from tests.console.conftest import SERVERS, ConsoleEnv, start_agent
from tests.console.idlerelay import IdleDroppingRelay
from tests.console.rfbclient import connect, rfb_handshake
from tests.kit.net import free_port
from tests.kit.wait import wait_for

IDLE_DROP = 6.0
SILENCE = 15.0
KEEPALIVE = 2.0
COMMON_IDLE_TIMER = 60.0  # NAT boxes and load balancers often cut at 60 s


async def test_silent_console_survives_idle_dropping_relay(
    tmp_path: Path, database_url: str | None
) -> None:
    port = free_port()
    relay = IdleDroppingRelay("127.0.0.1", port, idle_timeout=IDLE_DROP)
    await relay.start()
    # Browsers and the agent both reach the controller only through the relay.
    config = ServeConfig(
        data_dir=tmp_path / "data",
        listen=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{relay.port}",
        heartbeat_interval=0.5,
        console_keepalive=KEEPALIVE,
        database_url=database_url or "",
    )
    # The default keepalive beats a common idle timer as this test's beats its own.
    default = ServeConfig(data_dir=tmp_path / "defaults").console_keepalive
    assert default < COMMON_IDLE_TIMER and KEEPALIVE < IDLE_DROP
    ctl = Controller(config)
    await ctl.start()
    agent = driver = task = None
    try:
        agent, driver, task = await start_agent(ctl, tmp_path / "agent")
        async with aiohttp.ClientSession() as session:
            creds = ctl.credentials
            token, body = await login(
                session, config.base_url, creds.username, creds.password, creds.project
            )
            api = ApiClient(
                config.base_url, session, token, body["project"]["id"], body["user"]["id"]
            )
            env = ConsoleEnv(ctl, api, driver, agent)
            uuid = await env.server("quiet")
            url = await env.console_url(uuid)
            assert url.startswith(f"http://127.0.0.1:{relay.port}/ui/")
            console_token = parse_qs(urlsplit(url).query)["token"][0]
            ws = await connect(session, env.ws_url(console_token))
            rfb = await rfb_handshake(ws)
            await rfb.request_update()
            await rfb.read_update()
            # Control: a plain idle connection through the same relay is cut.
            accepted_before = relay.accepted + 1  # the console plus this control connection
            _, idle_writer = await asyncio.open_connection("127.0.0.1", relay.port)
            await wait_for(lambda: relay.accepted == accepted_before, 5, message="the accept")
            # Real time on purpose: the point is surviving a real idle timer (IDLE_DROP).
            await asyncio.sleep(SILENCE)  # no input at all from the "browser"
            assert relay.dropped >= 1, "the relay did not drop the idle control connection"
            assert not ws.closed
            await rfb.key()
            await rfb.request_update(incremental=True)
            (rect,) = await rfb.read_update(timeout=10)
            assert rect[2:4] == (320, 200)
            assert relay.accepted == accepted_before  # the console never had to reconnect
            await ws.close()
            idle_writer.close()
            status, _, _ = await api.get(f"{SERVERS}/{uuid}")
            assert status == 200
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if driver is not None:
            await driver.cleanup_host()
        await ctl.stop()
        await relay.stop()
