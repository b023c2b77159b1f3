"""One real cloud per module on the real libvirtd: `mininova serve` + one libvirt agent.

The cloud lives under /var/tmp/mininova-e2e-<random>; the agent keeps guest files in its
default instances dir, /var/lib/libvirt/mininova/lv1, which it prepares for the QEMU user. Whatever the tests leave behind -- domains of this
cloud's instances (matched by uuid), their DHCP reservations, the directory -- is removed in
the finalizer, also when a test failed.

Environment knobs:
  MININOVA_E2E_VIRT_TYPE  virt_type for the agent (default "auto": the KVM probe runs and,
                          KVM being unusable here, the agent falls back to QEMU/TCG)
  MININOVA_E2E_KEEP=1     keep the /var/tmp directory (logs) after the run
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mininova.paths import INSTANCES_ROOT
from tests.e2e.procs import Agent, Serve, base_env, free_port, run_client, wait_until
from tests.kit.pg_fixtures import fresh_database_url, read_rows
from tests.libvirt_e2e.host import host_skip_reason, purge_domains, tail

HOST = "lv1"
VIRT_TYPE = os.environ.get("MININOVA_E2E_VIRT_TYPE", "auto")


CloudT = TypeVar("CloudT", bound="Cloud")


@dataclass
class Cloud:
    root: Path
    serve: Serve
    agent: Agent
    ids: set[str] = field(default_factory=set)
    facts: dict[str, Any] = field(default_factory=dict)

    # -- paths ------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return self.serve.os_env()

    @property
    def instances(self) -> Path:
        """The agent's default instances dir (outside its 0700 data dir)."""
        return INSTANCES_ROOT / HOST

    @property
    def base_dir(self) -> Path:
        return self.instances / "_base"

    # -- diagnostics ------------------------------------------------------------------------

    def logs(self, lines: int = 40) -> str:
        serve_log = "\n".join(
            line for line in tail(self.serve.log, 400).splitlines() if "aiohttp.access" not in line
        )
        serve_log = "\n".join(serve_log.splitlines()[-lines:])
        return (
            f"\n--- agent log ({self.agent.log}) ---\n{tail(self.agent.log, lines)}"
            f"\n--- serve log ({self.serve.log}) ---\n{serve_log}\n"
        )

    def agent_log(self) -> str:
        assert self.agent.log is not None
        return self.agent.log.read_text(errors="replace")

    # -- clients ----------------------------------------------------------------------------

    def run(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess:
        """`openstack ARGS` as admin; on failure the error carries the log tails."""
        try:
            return run_client(self.env, "openstack", *args, check=check, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.logs()}") from None

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-f", "json").stdout)

    def wait(
        self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
    ) -> Any:
        try:
            return wait_until(predicate, timeout, interval=interval, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.logs()}") from None

    def show(self, name: str) -> dict[str, Any]:
        return self.json("server", "show", name)

    def _api(self, path: str) -> Any:
        """GET `path` of the compute API as admin (a cached token): cheap polling, leaving
        the CPU to the TCG guests instead of one `openstack` process per poll."""
        for _attempt in range(2):
            if "token" not in self.facts:
                body = {
                    "auth": {
                        "identity": {
                            "methods": ["password"],
                            "password": {
                                "user": {
                                    "name": "admin",
                                    "domain": {"name": "Default"},
                                    "password": self.serve.password,
                                }
                            },
                        },
                        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}},
                    }
                }
                request = urllib.request.Request(
                    self.serve.url + "/identity/v3/auth/tokens",
                    data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as resp:
                    self.facts["token"] = resp.headers["X-Subject-Token"]
            request = urllib.request.Request(
                self.serve.url + "/compute/v2.1" + path,
                headers={"X-Auth-Token": self.facts["token"]},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 401:
                    raise
                self.facts.pop("token", None)
        raise AssertionError(f"GET {path}: the admin token is refused")

    def _server_by_name(self, name: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"name": f"^{re.escape(name)}$"})
        found = [s for s in self._api(f"/servers/detail?{query}")["servers"] if s["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} servers named {name}{self.logs()}")
        return found[0]

    def wait_status(self, name: str, status: str, timeout: float = 120) -> dict[str, Any]:
        """Poll the server (the API, cheaply) until STATUS with no task in progress; fail fast
        on ERROR; then answer `openstack server show` as a user would see it."""
        last: dict[str, Any] = {}

        def done() -> bool:
            nonlocal last
            last = self._server_by_name(name)
            if last["status"] == "ERROR" and status != "ERROR":
                raise AssertionError(
                    f"{name} went to ERROR waiting for {status}: "
                    f"fault={last.get('fault')}{self.logs()}"
                )
            return last["status"] == status and last["OS-EXT-STS:task_state"] is None

        self.wait(
            done,
            timeout,
            f"{name} to be {status} (last: {last.get('status')}/"
            f"{last.get('OS-EXT-STS:task_state')})",
        )
        return self.show(name)

    def console(self, name: str) -> str:
        return self.run("console", "log", "show", name).stdout.replace("\r", "")

    def instance_ids_in_db(self) -> set[str]:
        """Every instance this cloud ever recorded (deleted too), read from its database."""
        db = self.serve.data_dir / "mininova.sqlite"
        if self.serve.database_url is None and not db.exists():
            return set()
        rows = read_rows(self.serve.database_url, db, "SELECT uuid FROM instances", timeout=5)
        return {row["uuid"] for row in rows}

    def wait_agent_connected(self, after: int = 0, timeout: float = 90) -> None:
        """Wait for an agent "connected to" line past byte offset `after` of its log."""

        def connected() -> bool:
            return "connected to " in self.agent_log()[after:]

        self.wait(connected, timeout, "the libvirt agent to connect")
        self.wait(
            lambda: any(
                s["State"] == "up" and s["Host"] == HOST
                for s in self.json("compute", "service", "list", "--service", "nova-compute")
            ),
            30,
            "nova-compute on the libvirt host to be up",
        )


def make_ed25519_public_key(path: Path) -> tuple[str, str]:
    """Write an ed25519 public key to `path`; (key text, Nova's md5 fingerprint)."""
    if shutil.which("ssh-keygen"):
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "e2e@mininova",
                "-f",
                str(path.with_suffix("")),
            ],
            check=True,
            capture_output=True,
        )
    else:  # same wire format as ssh-keygen: string "ssh-ed25519", string <32 byte key>
        blob = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", os.urandom(32)))
        path.write_text(f"ssh-ed25519 {base64.b64encode(blob).decode()} e2e@mininova\n")
    key = path.read_text().strip()
    digest = hashlib.md5(base64.b64decode(key.split()[1]), usedforsecurity=False).hexdigest()
    return key, ":".join(digest[i : i + 2] for i in range(0, 32, 2))


@contextlib.contextmanager
def real_cloud(
    request: pytest.FixtureRequest,
    host: str,
    make: Callable[..., CloudT],
    prefix: str,
    env: dict[str, str] | None = None,
) -> Iterator[CloudT]:
    """`mininova serve` + one real libvirt agent named `host` under a fresh /var/tmp
    directory (`env`: more variables for both, e.g. MININOVA_* settings); on exit the agent
    and serve stop and this cloud's domains and files go."""
    extra_env = env or {}
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    root.chmod(0o755)
    env = base_env(root, fresh_database_url(request))  # PostgreSQL mode: a fresh database
    env.update(
        {
            # Heartbeats carry the power states the conductor syncs from; 2 s keeps the sync
            # quick, 5 missed beats (10 s) tolerate libvirt calls that stall a beat under TCG.
            "MININOVA_HEARTBEAT_INTERVAL": "2",
            "MININOVA_MISSED_HEARTBEATS_DOWN": "5",
            "MININOVA_AGENT_HEARTBEAT_INTERVAL": "2",
            "MININOVA_AGENT_RECONNECT_MAX_BACKOFF": "1",
            **extra_env,
        }
    )
    serve = Serve(root / "serve", free_port(), env)
    agent = Agent(
        serve,
        host,
        driver="libvirt",
        data_dir=root / "agent",
        extra_env={"MININOVA_AGENT_VIRT_TYPE": VIRT_TYPE},
    )
    cl = make(root, serve, agent)
    shutil.rmtree(cl.instances, ignore_errors=True)  # left over from an interrupted run
    try:
        serve.start()
        agent.start()
        cl.wait_agent_connected()
        yield cl
    finally:
        with contextlib.suppress(Exception):
            agent.stop(signal.SIGTERM)
        ids = set(cl.ids)
        with contextlib.suppress(Exception):
            ids |= cl.instance_ids_in_db()
        with contextlib.suppress(Exception):
            serve.stop()
        purge_domains(uuids=ids)
        if os.environ.get("MININOVA_E2E_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(cl.instances, ignore_errors=True)


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    reason = host_skip_reason()
    if reason:
        pytest.skip(reason)
    with real_cloud(request, HOST, Cloud, "mininova-e2e-") as cl:
        yield cl
