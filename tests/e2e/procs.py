"""Real processes for end-to-end tests: `mininova serve`, `mininova agent`, the clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit.net import free_port
from tests.kit.pg_fixtures import DATABASE_URL_ENV, with_database_url
from tests.kit.wait import wait_until as _wait_until

BIN = Path(sys.executable).parent
MININOVA = [sys.executable, "-m", "mininova.cli"]


__all__ = ["free_port", "wait_until"]


def wait_until(predicate: Any, timeout: float, interval: float = 0.25, what: str = "") -> Any:
    """The kit's blocking poll, keeping this module's `what=` keyword."""
    return _wait_until(predicate, timeout, interval, what)


@dataclass
class Serve:
    """A `mininova serve` process on a loopback port."""

    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log: Path | None = None
    token: str = ""
    password: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str | None:
        """The PostgreSQL database serve uses (from its env), None for the SQLite file.
        A restart with this same env keeps the same database."""
        return self.env.get(DATABASE_URL_ENV) or None

    def start(self, *extra: str) -> None:
        self.log = self.data_dir.parent / f"serve-{self.port}.log"
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                *MININOVA,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_until(self._healthy, 30, what="mininova serve to answer")
        text = self.log.read_text()
        wait_until(lambda: "--token" in self.log.read_text(), 10, what="serve banner")
        text = self.log.read_text()
        self.token = re.findall(r"--token (\S+)", text)[-1]
        creds = (self.data_dir / "admin-credentials").read_text()
        self.password = re.search(r"password=(\S+)", creds).group(1)  # type: ignore[union-attr]

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited: {self.log.read_text() if self.log else ''}")
        try:
            with urllib.request.urlopen(self.url + "/healthcheck", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def os_env(
        self, user: str = "admin", password: str | None = None, project: str = "admin"
    ) -> dict[str, str]:
        env = dict(self.env)
        env.update(
            {
                "OS_AUTH_URL": self.url + "/identity/v3",
                "OS_USERNAME": user,
                "OS_PASSWORD": password if password is not None else self.password,
                "OS_PROJECT_NAME": project,
                "OS_USER_DOMAIN_NAME": "Default",
                "OS_PROJECT_DOMAIN_NAME": "Default",
                "OS_REGION_NAME": "RegionOne",
                "OS_IDENTITY_API_VERSION": "3",
                "OS_INTERFACE": "public",
            }
        )
        for key in ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE"):
            env.pop(key, None)
        return env


@dataclass
class Agent:
    """A `mininova agent` process."""

    serve: Serve
    host: str
    driver: str = "fake"
    data_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log: Path | None = None

    def start(self) -> None:
        assert self.data_dir is not None
        self.log = self.data_dir.parent / f"agent-{self.host}.log"
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        env = {**self.serve.env, **self.extra_env}
        self.proc = subprocess.Popen(
            [
                *MININOVA,
                "agent",
                "--controller",
                self.serve.url,
                "--token",
                self.serve.token,
                "--driver",
                self.driver,
                "--host",
                self.host,
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def run_client(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess:
    """Run a real client executable from the venv (openstack, nova)."""
    cmd = [str(BIN / args[0]), *args[1:]]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def osc_json(env: dict[str, str], *args: str) -> Any:
    proc = run_client(env, "openstack", *args, "-f", "json")
    return json.loads(proc.stdout)


def base_env(tmp: Path, database_url: str | None = None) -> dict[str, str]:
    """The clients' and processes' env; `database_url` (PostgreSQL mode, from the kit's
    `fresh_database_url`) goes to serve as MININOVA_DATABASE_URL."""
    env = with_database_url(
        {k: v for k, v in os.environ.items() if not k.startswith("OS_")}, database_url
    )
    env.update(
        {
            "MININOVA_HEARTBEAT_INTERVAL": "1",
            "MININOVA_AGENT_HEARTBEAT_INTERVAL": "1",
            "MININOVA_AGENT_RECONNECT_MAX_BACKOFF": "1",
            "MININOVA_AGENT_FAKE_BOOT_SECONDS": "0.3",
            "HOME": str(tmp),
        }
    )
    return env
