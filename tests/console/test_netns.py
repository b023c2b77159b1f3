"""NAT topology: the agent sits behind a masquerading router in its own network namespace.

    root ns (controller, test client)   10.200.N.1/30 ── 10.200.N.2/30  router ns (MASQUERADE)
                                                          10.200.N.5/30 ── 10.200.N.6/30  agent ns

The root namespace gets an `unreachable` route for 10.200.N.4/30 (nothing leaves for it, not
even via a default gateway), so the controller cannot reach the agent;
the agent reaches the controller through the NAT. The console must still work, because the
agent dials the tunnel. Only addresses on the veths this test creates are used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from mininova.config import ServeConfig
from mininova.controller import Controller
from mininova.store import instances
from mininova.tls import client_ssl_context
from tests.conftest import ApiClient, login
from tests.console.conftest import ConsoleEnv, token_of
from tests.console.rfbclient import connect, rfb_handshake
from tests.kit.net import free_port
from tests.kit.wait import wait_for

pytestmark = pytest.mark.netns


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@dataclass
class Topology:
    router: str
    agent_ns: str
    controller_ip: str
    agent_ip: str


@pytest.fixture
def nat() -> Iterator[Topology]:
    if shutil.which("ip") is None:
        pytest.skip("host capability missing: the `ip` command (iproute2) is not installed")
    tag = os.getpid() % 100000
    n = 200 + os.getpid() % 50  # 10.200.N.0/29, private to this test
    router, agent_ns = f"mnv-r{tag}", f"mnv-a{tag}"
    probe = _run("ip", "netns", "add", router)
    if probe.returncode != 0:
        pytest.skip(
            "host capability missing: `ip netns add` is not permitted here "
            f"(needs root / CAP_SYS_ADMIN): {probe.stderr.strip()}"
        )
    try:
        steps = [
            ("ip", "netns", "add", agent_ns),
            (
                "ip",
                "link",
                "add",
                f"mnv{tag}c",
                "type",
                "veth",
                "peer",
                "name",
                f"mnv{tag}r",
                "netns",
                router,
            ),
            ("ip", "addr", "add", f"10.200.{n}.1/30", "dev", f"mnv{tag}c"),
            ("ip", "link", "set", f"mnv{tag}c", "up"),
            ("ip", "-n", router, "addr", "add", f"10.200.{n}.2/30", "dev", f"mnv{tag}r"),
            ("ip", "-n", router, "link", "set", f"mnv{tag}r", "up"),
            (
                "ip",
                "-n",
                router,
                "link",
                "add",
                f"mnv{tag}i",
                "type",
                "veth",
                "peer",
                "name",
                f"mnv{tag}a",
                "netns",
                agent_ns,
            ),
            ("ip", "-n", router, "addr", "add", f"10.200.{n}.5/30", "dev", f"mnv{tag}i"),
            ("ip", "-n", router, "link", "set", f"mnv{tag}i", "up"),
            ("ip", "-n", router, "link", "set", "lo", "up"),
            ("ip", "-n", agent_ns, "addr", "add", f"10.200.{n}.6/30", "dev", f"mnv{tag}a"),
            ("ip", "-n", agent_ns, "link", "set", f"mnv{tag}a", "up"),
            ("ip", "-n", agent_ns, "link", "set", "lo", "up"),
            ("ip", "-n", agent_ns, "route", "add", f"10.200.{n}.0/30", "via", f"10.200.{n}.5"),
            ("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"),
            # The root namespace must never send the agent's addresses anywhere (not even to
            # its default gateway): they are unreachable from here, as behind a real NAT.
            ("ip", "route", "add", "unreachable", f"10.200.{n}.4/30"),
        ]
        for cmd in steps:
            result = _run(*cmd)
            if result.returncode != 0:
                pytest.skip(
                    f"host capability missing: `{' '.join(cmd)}` failed: {result.stderr.strip()}"
                )
        if shutil.which("iptables") is None:
            pytest.skip("host capability missing: iptables (for the NAT router) not installed")
        result = _run(
            "ip",
            "netns",
            "exec",
            router,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            f"mnv{tag}r",
            "-j",
            "MASQUERADE",
        )
        if result.returncode != 0:
            pytest.skip(
                f"host capability missing: iptables NAT in a namespace failed: "
                f"{result.stderr.strip()}"
            )
        yield Topology(router, agent_ns, f"10.200.{n}.1", f"10.200.{n}.6")
    finally:
        _run("ip", "route", "del", "unreachable", f"10.200.{n}.4/30")
        _run("ip", "netns", "del", agent_ns)
        _run("ip", "netns", "del", router)  # also removes the root end of the veth pair


async def test_console_through_nat(nat: Topology, tmp_path: Path, database_url: str | None) -> None:
    # The controller cannot reach the agent's address at all.
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(1)
        s.connect((nat.agent_ip, 9))

    port = free_port()
    config = ServeConfig(
        data_dir=tmp_path / "data",
        listen=f"{nat.controller_ip}:{port}",
        heartbeat_interval=1.0,
        database_url=database_url or "",
    )
    ctl = Controller(config)
    await ctl.start()
    proc = None
    try:
        assert ctl.credentials is not None
        log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                nat.agent_ns,
                sys.executable,
                "-m",
                "mininova.cli",
                "agent",
                "--controller",
                config.base_url,
                "--token",
                ctl.join_token,
                "--ca-cert-hash",
                ctl.tls.ca_fingerprint,
                "--driver",
                "fake",
                "--host",
                "nat-node",
                "--data-dir",
                str(tmp_path / "agent"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
        hub = ctl.hub

        def connected() -> bool:
            assert proc.poll() is None, (tmp_path / "agent.log").read_text()
            return hub.is_connected("nat-node")

        await wait_for(connected, 20, 0.1, lambda: (tmp_path / "agent.log").read_text())
        trust = client_ssl_context(ctl.tls.ca_file.read_bytes())
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
            creds = ctl.credentials
            token, body = await login(
                session, config.base_url, creds.username, creds.password, creds.project
            )
            api = ApiClient(
                config.base_url, session, token, body["project"]["id"], body["user"]["id"]
            )
            env = ConsoleEnv(ctl, api, None, None)
            uuid = await env.server("natted")
            row = await instances.get(ctl.store, uuid)
            assert row["host"] == "nat-node"
            url = await env.console_url(uuid)
            ws = await connect(session, env.ws_url(token_of(url)), headers={"Origin": env.base})
            rfb = await rfb_handshake(ws)
            await rfb.request_update()
            (rect,) = await rfb.read_update()
            assert len(rect[4]) == 320 * 200 * 4
            await rfb.key()
            await rfb.request_update(incremental=True)
            (rect2,) = await rfb.read_update()
            assert rect2[4] != rect[4]
            await ws.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        await ctl.stop()
