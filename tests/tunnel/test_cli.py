"""Real processes: `mininova serve` + `mininova agent --driver fake` (guests report
127.0.0.1), and `mininova tunnel` / `port-forward` / `ssh` from the real CLI with OS_* vars,
reaching TCP servers this test runs on the guest address."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import (
    MININOVA,
    Agent,
    Serve,
    base_env,
    free_port,
    osc_json,
    run_client,
    wait_until,
)
from tests.tunnel.conftest import GUEST_IP


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.connections += 1  # type: ignore[attr-defined]
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _FakeSsh(socketserver.BaseRequestHandler):
    """Says an SSH banner, keeps the client's, then hangs up (no key exchange)."""

    def handle(self) -> None:
        self.request.sendall(b"SSH-2.0-mininova_fake_sshd\r\n")
        self.server.received = self.request.recv(256)  # type: ignore[attr-defined]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    connections = 0
    received = b""


@contextlib.contextmanager
def guest_service(handler: type[socketserver.BaseRequestHandler]) -> Iterator[_Server]:
    server = _Server((GUEST_IP, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running cloud with one ACTIVE server "vm1"; yields the client env (OS_* vars)."""
    tmp = tmp_path_factory.mktemp("tunnel-cloud")
    serve = Serve(tmp / "data", free_port(), base_env(tmp))
    serve.start()
    agent = Agent(
        serve,
        "tunnel1",
        data_dir=tmp / "agent",
        extra_env={"MININOVA_AGENT_FAKE_GUEST_ADDRESS": GUEST_IP},
    )
    agent.start()
    try:
        env = serve.os_env()
        wait_until(
            lambda: any(
                h["State"] == "up"
                for h in osc_json(env, "compute", "service", "list", "--service", "nova-compute")
            ),
            30,
            interval=0.5,
            what="the fake agent to be up",
        )
        image = tmp / "disk.qcow2"
        image.write_bytes(b"QFI\xfb" + b"\0" * 4096)
        osc_json(env, "image", "create", "--file", str(image), "--disk-format", "qcow2", "img")
        run_client(
            env, "openstack", "security", "group", "rule", "create", "--protocol", "tcp",
            "--dst-port", "1:65535", "default",
        )  # fmt: skip
        osc_json(env, "server", "create", "--image", "img", "--flavor", "1", "--wait", "vm1")
        off = osc_json(env, "server", "create", "--image", "img", "--flavor", "1", "--wait", "off")
        run_client(env, "openstack", "server", "stop", "off")
        wait_until(
            lambda: osc_json(env, "server", "show", "off")["status"] == "SHUTOFF",
            30,
            what="server off to be SHUTOFF",
        )
        env["TEST_OFF_ID"] = off["id"]
        env["TEST_CLOUDS_YAML"] = str(serve.data_dir / "clouds.yaml")
        yield env
    finally:
        agent.stop()
        serve.stop()


def mininova(env: dict[str, str], *args: str, **kw: object) -> subprocess.Popen:
    return subprocess.Popen(
        [*MININOVA, *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    )


def test_tunnel_bridges_stdin_and_stdout(cloud: dict[str, str]) -> None:
    with guest_service(_Echo) as guest:
        port = guest.server_address[1]
        proc = mininova(cloud, "tunnel", "vm1", str(port))
        assert proc.stdin is not None and proc.stdout is not None
        payload = os.urandom(3 * 1024 * 1024)
        received = bytearray()

        def read() -> None:
            assert proc.stdout is not None
            while len(received) < len(payload) and (chunk := proc.stdout.read1(65536)):
                received.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        proc.stdin.write(payload)
        proc.stdin.flush()
        reader.join(60)
        assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
        proc.stdin.close()  # end of input closes the tunnel; the command exits
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        assert guest.connections == 1


@pytest.mark.parametrize(
    ("server", "port", "message"),
    [
        ("no-such-vm", "22", "no server named or with id 'no-such-vm'"),
        (
            "vm1",
            "1",
            "tunnel to port 1 refused (502): cannot connect to 127.0.0.1:1: Connection refused",
        ),
        ("off", "22", "server off ({off}) is SHUTOFF, not ACTIVE"),
        ("vm1", "0", "Invalid value for 'PORT': 0 is not in the range 1<=x<=65535."),
    ],
)
def test_tunnel_errors(cloud: dict[str, str], server: str, port: str, message: str) -> None:
    message = message.format(off=cloud["TEST_OFF_ID"])
    proc = subprocess.run(
        [*MININOVA, "tunnel", server, port], env=cloud, capture_output=True, text=True, timeout=60
    )
    if port == "0":  # click's usage error
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    else:
        assert (proc.returncode, proc.stderr) == (1, f"mininova tunnel: {message}\n")
    assert proc.stdout == ""


def test_port_forward(cloud: dict[str, str]) -> None:
    with guest_service(_Echo) as guest:
        proc = mininova(cloud, "port-forward", "vm1", f"0:{guest.server_address[1]}", text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.match(r"Forwarding 127\.0\.0\.1:(\d+) -> server vm1 \(\S+\) port \d+", line)
            assert match, line
            local = int(match.group(1))
            for i in range(3):  # one tunnel per connection, several at once
                with (
                    socket.create_connection(("127.0.0.1", local), 30) as a,
                    socket.create_connection(("127.0.0.1", local), 30) as b,
                ):
                    for sock, word in ((a, b"alpha\n"), (b, b"beta\n")):
                        sock.sendall(word * (i + 1))
                        got = b""
                        while len(got) < len(word) * (i + 1):
                            got += sock.recv(65536)
                        assert got == word * (i + 1)
            wait_until(lambda: guest.connections == 6, 10, what="six guest connections")
        finally:
            proc.terminate()
            assert proc.wait(30) == 0


def test_ssh_reaches_the_guest(cloud: dict[str, str], tmp_path: Path) -> None:
    """`mininova ssh --os-cloud` (clouds.yaml) runs the system ssh with `mininova tunnel` as
    ProxyCommand: the client exchanges SSH banners with the service on the guest's port."""
    if shutil.which("ssh") is None:
        pytest.skip("no ssh client (ssh) on PATH")
    env = {k: v for k, v in cloud.items() if not k.startswith("OS_")}
    env.update(
        {
            "OS_CLIENT_CONFIG_FILE": cloud["TEST_CLOUDS_YAML"],
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
        }
    )
    with guest_service(_FakeSsh) as guest:
        port = guest.server_address[1]
        proc = subprocess.run(
            [*MININOVA, "ssh", "--os-cloud", "mininova", "vm1", "-p", str(port), "-v"]
            + ["-o", "BatchMode=yes", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0  # the fake sshd hangs up after the banners
    assert "remote software version mininova_fake_sshd" in proc.stderr, proc.stderr
    assert guest.received.startswith(b"SSH-2.0-OpenSSH"), guest.received
    assert re.search(
        rf"Executing proxy command: exec \S+ -m mininova.cli tunnel --os-cloud mininova \S+ {port}\n",
        proc.stderr,
    )
    assert f"Authenticating to vm1:{port} as 'root'" in proc.stderr
    known = tmp_path / "config" / "mininova" / "known_hosts" / "mininova"
    assert known.parent.is_dir()
    assert str(known) in proc.stderr  # ssh's -v names the known_hosts file it reads


def test_wrong_password_and_bad_ports(cloud: dict[str, str]) -> None:
    env = {**cloud, "OS_PASSWORD": "wrong"}
    proc = subprocess.run(
        [*MININOVA, "tunnel", "vm1", "22"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("mininova tunnel: authentication failed: "), proc.stderr
    assert proc.stderr.count("\n") == 1  # one line, no traceback, no keystoneauth warnings
    proc = subprocess.run(
        [*MININOVA, "port-forward", "vm1", "8080"],
        env=cloud,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "expected LOCAL_PORT:GUEST_PORT, e.g. 8080:80" in proc.stderr


def test_tunnel_refused_by_security_groups(cloud: dict[str, str]) -> None:
    """A server whose only group admits no TCP: `mininova tunnel` prints the refusal, which
    names the server and port and the rule to add, and exits non-zero."""
    env = cloud
    osc_json(env, "security", "group", "create", "closed")
    server = osc_json(
        env, "server", "create", "--image", "img", "--flavor", "1", "--security-group",
        "closed", "--wait", "closed-vm",
    )  # fmt: skip
    proc = mininova(env, "tunnel", "closed-vm", "22")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    text = err.decode()
    assert "refused (403)" in text and server["id"] in text and "TCP port 22" in text, text
    assert "openstack security group rule create --protocol tcp --dst-port 22 closed" in text
