"""A real, throwaway PostgreSQL server for tests.

`PostgresServer.start()` runs Debian's server binaries (`/usr/lib/postgresql/<ver>/bin`, the
newest version found; `MININOVA_PG_BIN` overrides the directory) on a data directory in a fresh
temp dir: trust authentication on a unix socket in that temp dir and on 127.0.0.1 at a free
port, `fsync=off` and friends for speed. PostgreSQL refuses to run as root, so when the tests
run as root the server (initdb, pg_ctl) runs as the `postgres` system user that the Debian
package creates, and the temp dir belongs to that user. Nothing of the system cluster is used.

Databases are made with `create_database()` (a fresh, uniquely named one each call) and
dropped with `drop_database(name)`; `stop()` stops the server and removes the temp dir.
The fixtures around it live in `tests.kit.pg_fixtures`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.kit.net import free_port

PG_ROOT = Path("/usr/lib/postgresql")
PG_BIN_ENV = "MININOVA_PG_BIN"
SERVER_USER = "postgres"  # the system user the server runs as when the tests run as root
SUPERUSER = "postgres"  # the database superuser initdb creates (trust auth, no password)
NEEDED = ("initdb", "pg_ctl", "postgres", "psql")
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "log_statement": "none",
}


class PostgresUnavailable(Exception):
    """This host cannot run a throwaway PostgreSQL server (the reason says why)."""


def _version_key(path: Path) -> tuple[int, ...]:
    parts = path.parent.name.split(".")
    return tuple(int(p) if p.isdigit() else -1 for p in parts)


def find_pg_bin(root: Path = PG_ROOT) -> Path | None:
    """The server binary directory: `$MININOVA_PG_BIN`, else the newest `root/<ver>/bin`
    holding initdb, pg_ctl, postgres and psql; None when there is none."""

    def complete(d: Path) -> bool:
        return all(os.access(d / name, os.X_OK) for name in NEEDED)

    override = os.environ.get(PG_BIN_ENV)
    if override:
        return Path(override) if complete(Path(override)) else None
    candidates = sorted((d for d in root.glob("*/bin") if complete(d)), key=_version_key)
    return candidates[-1] if candidates else None


def _is_root() -> bool:
    return os.geteuid() == 0


@dataclass
class PostgresServer:
    """One throwaway server. Use `start()`/`stop()` or the `postgres_server` fixture."""

    bin_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    base_dir: Path | None = None  # the temp dir: data/, sock/, server.log
    databases: set[str] = field(default_factory=set)
    _user: pwd.struct_passwd | None = None

    # -- paths and URLs -----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None, "server not started"
        return self.base_dir / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL: `postgresql+asyncpg://postgres@127.0.0.1:PORT/dbname`."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """The libpq / asyncpg DSN: `postgresql://postgres@127.0.0.1:PORT/dbname`."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    # -- running things -------------------------------------------------------------------------

    def _run_as_server_user(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a server binary; as the postgres user when we are root (PostgreSQL refuses root)."""
        extra: dict = {}
        if self._user is not None:
            extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "HOME": str(self.base_dir)})
        return subprocess.run(
            args,
            cwd=self.base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            **extra,
            **kwargs,
        )

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql over TCP as the superuser; raise with psql's message on failure."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        if _is_root():
            try:
                self._user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"tests run as root and there is no {SERVER_USER!r} system user to run"
                    " PostgreSQL as (install Debian's postgresql package)"
                ) from None
        # /tmp, not $TMPDIR: the postgres user must be able to reach the directory.
        self.base_dir = Path(tempfile.mkdtemp(prefix="mininova-pg-", dir="/tmp"))
        try:
            self.socket_dir.mkdir(mode=0o700)
            if self._user is not None:
                for path in (self.base_dir, self.socket_dir):
                    os.chown(path, self._user.pw_uid, self._user.pw_gid)
            self._initdb()
            self._start_on_free_port()
        except BaseException:
            self._remove_base_dir()
            raise
        return self

    def _initdb(self) -> None:
        proc = self._run_as_server_user(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed ({proc.returncode}): {proc.stderr.strip()}")
        # Trust on the unix socket and on 127.0.0.1 only.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def _write_settings(self) -> None:
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        conf = self.data_dir / "postgresql.conf"
        lines = [line for line in conf.read_text().splitlines() if "# mininova-test" not in line]
        lines += [f"{k} = {v}  # mininova-test" for k, v in settings.items()]
        conf.write_text("\n".join(lines) + "\n")

    def _start_on_free_port(self, attempts: int = 3) -> None:
        """Pick a free port and start; another process may take the port first, so retry."""
        last = ""
        for _ in range(attempts):
            self.port = free_port(self.host)
            self._write_settings()
            proc = self._run_as_server_user(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "start",
                ],
                timeout=START_TIMEOUT + 30,
            )
            if proc.returncode == 0:
                return
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            last = (proc.stderr.strip() + "\n" + log[-2000:]).strip()
            self._kill_postmaster()
            if "already in use" not in log:
                break
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError, AssertionError):
            return None

    def _kill_postmaster(self) -> None:
        pid = self._postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server and remove its temp dir. Safe to call twice."""
        if self.base_dir is None:
            return
        if self._postmaster_pid() is not None:
            proc = self._run_as_server_user(
                [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w"]
                + ["-t", "30", "stop"],
                timeout=60,
            )
            if proc.returncode != 0:
                self._kill_postmaster()
        self._remove_base_dir()

    def _remove_base_dir(self) -> None:
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    # -- databases --------------------------------------------------------------------------

    def create_database(self, prefix: str = "mininova_test") -> str:
        """Create a fresh database with a unique name and return the name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        self.databases.add(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending its open connections (a pool the test left open)."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.discard(name)
