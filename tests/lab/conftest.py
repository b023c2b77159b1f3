"""A two-host lab on one machine: `mininova serve` in the root namespace, a compute host in its
own network namespace, joined with exactly the command serve prints.

    root ns: mininova serve --listen 10.201.N.1:PORT    10.201.N.1/30 ── 10.201.N.2/30  ns host2
             (HTTPS by default: not loopback)                            agent "lab-host2"

Only the two addresses of the veth pair created here are used (N is derived from the pid and
checked to be unused). State lives under /var/tmp/mininova-lab-<random> (0755, so QEMU can
traverse it); the real host's guest files go to the agent's default instances directory
/var/lib/libvirt/mininova/lab-host2. The finalizers remove the namespace (and with it the
veth pair), every process started here, this cloud's libvirt domains and all directories.

Environment knobs:
  MININOVA_E2E_VIRT_TYPE  virt_type for the libvirt agent (default "auto")
  MININOVA_E2E_KEEP=1     keep the /var/tmp directory (logs) after the run
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import BIN, base_env, run_client, wait_until
from tests.kit.net import free_port
from tests.kit.pg_fixtures import DATABASE_URL_ENV, fresh_database_url, read_rows
from tests.libvirt_e2e.host import host_skip_reason, purge_domains, tail

HOST2 = "lab-host2"
VIRT_TYPE = os.environ.get("MININOVA_E2E_VIRT_TYPE", "auto")
INSTANCES_ROOT = Path("/var/lib/libvirt/mininova")
MININOVA = str(BIN / "mininova")
JOIN_RE = re.compile(
    r"^mininova agent --controller (?P<url>\S+) --token (?P<token>mnj_[0-9a-f]{8}\.\S+)"
    r" --ca-cert-hash (?P<pin>sha256:[0-9a-f]{64}) --driver libvirt --host \$\(hostname\)$"
)


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _pick_subnet() -> int:
    """A third octet N whose 10.201.N.0/30 appears in no address or route of this host."""
    used = _ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout
    used += _ip("-4", "route", "show", "table", "all").stdout
    start = os.getpid() % 254 + 1
    for i in range(254):
        n = (start + i - 1) % 254 + 1
        if f"10.201.{n}." not in used:
            return n
    pytest.skip("host capability missing: no free 10.201.N.0/30 subnet")


@dataclass
class AgentProc:
    """A `mininova agent` process started by the lab (possibly inside the namespace)."""

    name: str
    proc: subprocess.Popen
    log: Path
    data_dir: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_exit(self, timeout: float = 45) -> int:
        """The exit code; fails (after killing it) if the agent is still running."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"agent {self.name} still ran {timeout}s after start; it should have stopped"
                f" by itself\n--- agent log ---\n{tail(self.log, 30)}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Lab:
    root: Path
    ns: str
    n: int
    port: int
    env: dict[str, str]
    serve_proc: subprocess.Popen | None = None
    banner: str = ""
    join_line: str = ""
    agents: list[AgentProc] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    # -- addresses and paths ----------------------------------------------------------------

    @property
    def ctl_ip(self) -> str:
        return f"10.201.{self.n}.1"

    @property
    def ns_ip(self) -> str:
        return f"10.201.{self.n}.2"

    @property
    def url(self) -> str:
        return f"https://{self.ctl_ip}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "serve"

    @property
    def database_url(self) -> str | None:
        """serve's PostgreSQL database (PostgreSQL mode), None for its SQLite file."""
        return self.env.get(DATABASE_URL_ENV) or None

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.data_dir / "tls" / "server.pem"

    @property
    def serve_out(self) -> Path:
        return self.root / "serve.stdout"

    @property
    def serve_err(self) -> Path:
        return self.root / "serve.log"

    @property
    def join(self) -> re.Match[str]:
        match = JOIN_RE.match(self.join_line)
        assert match, f"printed join command has an unexpected shape: {self.join_line!r}"
        return match

    @property
    def pin(self) -> str:
        return self.join["pin"]

    @property
    def join_token(self) -> str:
        return self.join["token"]

    # -- logs -------------------------------------------------------------------------------

    def serve_log(self, since: int = 0) -> str:
        return self.serve_err.read_text(errors="replace")[since:]

    def serve_offset(self) -> int:
        return len(self.serve_log())

    def logs(self, lines: int = 40) -> str:
        serve_log = "\n".join(
            line for line in self.serve_log().splitlines() if "aiohttp.access" not in line
        )
        out = f"\n--- serve log ({self.serve_err}) ---\n" + "\n".join(
            serve_log.splitlines()[-lines:]
        )
        for agent in self.agents[-3:]:
            out += f"\n--- agent {agent.name} ({agent.log}) ---\n{tail(agent.log, lines)}"
        return out + "\n"

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, interval=0.5) -> Any:
        try:
            return wait_until(predicate, timeout, interval=interval, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.logs()}") from None

    # -- clients ----------------------------------------------------------------------------

    @property
    def os_env(self) -> dict[str, str]:
        """clouds.yaml only: no OS_* password variables."""
        env = {k: v for k, v in self.env.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.data_dir / "clouds.yaml")
        env["OS_CLOUD"] = "mininova"
        return env

    def osc(
        self, *args: str, check: bool = True, timeout: float = 240
    ) -> subprocess.CompletedProcess:
        try:
            return run_client(self.os_env, "openstack", *args, check=check, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.logs()}") from None

    def osc_json(self, *args: str, timeout: float = 240) -> Any:
        return json.loads(self.osc(*args, "-f", "json", timeout=timeout).stdout)

    def mininova(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [MININOVA, *args], capture_output=True, text=True, env=self.env, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"mininova {' '.join(args)} failed ({proc.returncode}):\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def token_create(self, *args: str) -> tuple[str, str, str]:
        """`mininova token create ARGS` -> (secret, id, full stdout)."""
        out = self.mininova("token", "create", "--data-dir", str(self.data_dir), *args).stdout
        secret = out.splitlines()[0].strip()
        match = re.fullmatch(r"mnj_([0-9a-f]{8})\.\S+", secret)
        assert match, f"token create did not print a token first: {out!r}"
        return secret, match.group(1), out

    # -- the database (read-only) -----------------------------------------------------------

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return read_rows(self.database_url, self.data_dir / "mininova.sqlite", sql, params)

    def token_row(self, token_id: str) -> dict[str, Any]:
        (row,) = self.rows(
            "SELECT id, used, uses_left, revoked_at FROM join_tokens WHERE id = ?", (token_id,)
        )
        return row

    def host_state(self, host: str) -> dict[str, list[dict[str, Any]]]:
        """Everything the controller keeps about one host name."""
        return {
            "compute_nodes": self.rows("SELECT * FROM compute_nodes WHERE host = ?", (host,)),
            "host_credentials": self.rows("SELECT * FROM host_credentials WHERE host = ?", (host,)),
        }

    # -- agents -----------------------------------------------------------------------------

    def start_agent(
        self,
        name: str,
        argv: list[str],
        *,
        netns: bool,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> AgentProc:
        """Start `argv` (a full command) as agent `name`, inside the namespace if `netns`."""
        log = self.root / f"agent-{name}-{len(self.agents)}.log"
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
        cmd = (["ip", "netns", "exec", self.ns] if netns else []) + argv
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env or self.env, cwd=self.root
        )
        out.close()
        agent = AgentProc(name, proc, log, data_dir or self.root)
        self.agents.append(agent)
        return agent

    def fake_agent(
        self,
        host: str,
        token: str,
        *,
        pin: str | None = None,
        controller: str | None = None,
        netns: bool = True,
        data_dir: Path | None = None,
    ) -> AgentProc:
        """`mininova agent --driver fake` with its own --data-dir and --host."""
        data_dir = data_dir or self.root / "agents" / f"{host}-{len(self.agents)}"
        argv = [
            MININOVA,
            "agent",
            "--controller",
            controller or self.url,
            "--token",
            token,
            "--ca-cert-hash",
            pin or self.pin,
            "--driver",
            "fake",
            "--host",
            host,
            "--data-dir",
            str(data_dir),
        ]
        return self.start_agent(host, argv, netns=netns, data_dir=data_dir)


def _https_ok(lab: Lab) -> bool:
    assert lab.serve_proc is not None
    if lab.serve_proc.poll() is not None:
        raise AssertionError(f"serve exited ({lab.serve_proc.returncode}){lab.logs()}")
    if not lab.ca_file.exists():
        return False
    ctx = ssl.create_default_context(cafile=str(lab.ca_file))
    try:
        with urllib.request.urlopen(lab.url + "/healthcheck", timeout=2, context=ctx) as resp:
            return resp.status == 200
    except OSError:
        return False


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL what still runs in our namespace (only processes this lab started)."""
    pids = _ip("netns", "pids", ns).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("host capability missing: root (for ip netns)")
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("host capability missing: the `ip` / `unshare` commands are not installed")
    tag = os.getpid() % 100000
    ns = f"mnv-lab{tag}"
    root_if, ns_if = f"mlab{tag}c", f"mlab{tag}h"
    probe = _ip("netns", "add", ns)
    if probe.returncode != 0:
        pytest.skip(
            "host capability missing: `ip netns add` is not permitted here "
            f"(needs root / CAP_SYS_ADMIN): {probe.stderr.strip()}"
        )
    root = Path(tempfile.mkdtemp(prefix="mininova-lab-", dir="/var/tmp"))
    root.chmod(0o755)
    lab: Lab | None = None
    try:
        n = _pick_subnet()
        steps = [
            ("link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", ns),
            ("addr", "add", f"10.201.{n}.1/30", "dev", root_if),
            ("link", "set", root_if, "up"),
            ("-n", ns, "addr", "add", f"10.201.{n}.2/30", "dev", ns_if),
            ("-n", ns, "link", "set", ns_if, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.skip(
                    f"host capability missing: `ip {' '.join(step)}` failed: "
                    f"{result.stderr.strip()}"
                )
        # PostgreSQL mode: a fresh database for this lab's serve and `mininova token`.
        env = base_env(root, fresh_database_url(request))
        env.update(
            {
                "PATH": f"{BIN}:{env.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
                # As in tests/libvirt_e2e: 2 s beats, 5 missed beats tolerate TCG stalls.
                "MININOVA_HEARTBEAT_INTERVAL": "2",
                "MININOVA_MISSED_HEARTBEATS_DOWN": "5",
                "MININOVA_AGENT_HEARTBEAT_INTERVAL": "2",
                "MININOVA_AGENT_RECONNECT_MAX_BACKOFF": "1",
            }
        )
        lab = Lab(root, ns, n, free_port(f"10.201.{n}.1"), env)
        out = open(lab.serve_out, "ab")  # noqa: SIM115 - handed to the child
        err = open(lab.serve_err, "ab")  # noqa: SIM115 - handed to the child
        lab.serve_proc = subprocess.Popen(
            [
                MININOVA,
                "serve",
                "--data-dir",
                str(lab.data_dir),
                "--listen",
                f"{lab.ctl_ip}:{lab.port}",
            ],
            stdout=out,
            stderr=err,
            env=env,
            cwd=root,
        )
        out.close()
        err.close()
        lab.wait(lambda: _https_ok(lab), 60, "mininova serve to answer over HTTPS")

        def join_line() -> str:
            lines = lab.serve_out.read_text().splitlines()
            for i, line in enumerate(lines[:-1]):
                if line.startswith("  join a compute host with") and line.endswith(":"):
                    return lines[i + 1]
            return ""

        lab.join_line = lab.wait(join_line, 20, "serve to print the join command").strip()
        lab.banner = lab.serve_out.read_text()
        yield lab
    finally:
        if lab is not None:
            for agent in lab.agents:
                with contextlib.suppress(Exception):
                    agent.stop()
        _kill_namespace_processes(ns)
        if lab is not None and lab.serve_proc is not None:
            lab.serve_proc.terminate()
            try:
                lab.serve_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.serve_proc.kill()
                lab.serve_proc.wait(timeout=10)
        _ip("netns", "del", ns)  # also removes the veth pair
        if _ip("link", "show", root_if).returncode == 0:
            _ip("link", "del", root_if)
        if os.environ.get("MININOVA_E2E_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class RealHost:
    agent: AgentProc
    data_dir: Path
    instances: Path
    default_data_dir_existed: bool


@pytest.fixture(scope="module")
def host2(lab: Lab) -> Iterator[RealHost]:
    """The printed join command, run verbatim in the namespace with hostname lab-host2."""
    reason = host_skip_reason()
    if reason:
        pytest.skip(reason)
    instances = INSTANCES_ROOT / HOST2
    # This directory belongs to this fixture (removed at the end): domains defined on it are
    # what a killed earlier run left, and would collide with this cloud's names.
    stale = purge_domains(disks_under=instances)
    if stale:
        print(f"removed {len(stale)} domain(s) an earlier run left on {instances}: {stale}")
    instances_root_existed = INSTANCES_ROOT.exists()
    default_data_dir = Path("/var/lib/mininova-agent")
    data_dir = lab.root / "host2-agent"
    env = {
        **lab.env,
        # How a user with a config would give the agent its state directory: no extra flags.
        "MININOVA_AGENT_DATA_DIR": str(data_dir),
        "MININOVA_AGENT_VIRT_TYPE": VIRT_TYPE,
    }
    script = f"hostname {HOST2} && exec {lab.join_line}"
    host = RealHost(
        lab.start_agent(
            HOST2,
            ["unshare", "--uts", "sh", "-c", script],
            netns=True,
            env=env,
            data_dir=data_dir,
        ),
        data_dir,
        instances,
        default_data_dir.exists(),
    )
    try:

        def connected() -> bool:
            if host.agent.proc.poll() is not None:
                raise AssertionError(f"the {HOST2} agent exited{lab.logs()}")
            return "connected to " in host.agent.text()

        lab.wait(connected, 120, f"the {HOST2} agent to connect")
        lab.wait(
            lambda: any(
                s["Host"] == HOST2 and s["State"] == "up"
                for s in lab.osc_json("compute", "service", "list", "--service", "nova-compute")
            ),
            60,
            f"nova-compute on {HOST2} to be up",
        )
        yield host
    finally:
        with contextlib.suppress(Exception):
            host.agent.stop()
        uuids: set[str] = set(lab.facts.get("uuids", set()))
        with contextlib.suppress(Exception):
            uuids |= {r["uuid"] for r in lab.rows("SELECT uuid FROM instances")}
        purge_domains(uuids=uuids)
        shutil.rmtree(instances, ignore_errors=True)
        if not instances_root_existed:
            with contextlib.suppress(OSError):
                INSTANCES_ROOT.rmdir()
        if not host.default_data_dir_existed:
            # Should never appear (a test checks it); if this agent made it, it is ours.
            shutil.rmtree(default_data_dir, ignore_errors=True)
