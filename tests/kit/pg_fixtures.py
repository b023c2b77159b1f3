"""pytest fixtures for the database backends (registered in tests/conftest.py's pytest_plugins).

* `postgres_server` (session): a started `tests.kit.postgres.PostgresServer`; skips the test
  when this host has no PostgreSQL server binaries. Stopped at the end of the session.
* `postgres_database` (function): the name of a fresh database on it, dropped after the test.
* `database_backend` (session): "sqlite" or "postgresql", from `MININOVA_TEST_DATABASE`
  (default sqlite).
* `database_url` (function): None for sqlite (the store's default file) or the
  `postgresql+asyncpg://…` URL of a fresh database, dropped after the test.

Helpers for fixtures that start `mininova serve` or build their own store:

* `fresh_database_url(request)`: the same choice for a fixture of any scope (a module-scoped
  cloud gets one database for the module; a serve restarted with the same env keeps it).
* `with_database_url(env, url)`: `env` plus `MININOVA_DATABASE_URL` when `url` is set, which
  `mininova serve` and `mininova token …` read; SQLite mode leaves `env` as it is.
* `read_rows(url, sqlite_file, sql, params)`: read-only rows for blocking test code, from the
  SQLite file or, when `url` is set, through a `mininova.store.Store` on that database.
* `stored_text(store)`: every value of every table as text (clear-text-secret checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.kit.postgres import PG_BIN_ENV, PostgresServer, PostgresUnavailable, find_pg_bin

BACKEND_ENV = "MININOVA_TEST_DATABASE"
DATABASE_URL_ENV = "MININOVA_DATABASE_URL"  # what `mininova serve` and `mininova token` read
BACKENDS = ("sqlite", "postgresql")


def selected_backend() -> str:
    """The backend the store tests run against: `MININOVA_TEST_DATABASE`, default sqlite."""
    value = (os.environ.get(BACKEND_ENV) or "sqlite").strip().lower()
    if value not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND_ENV}={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        where = os.environ.get(PG_BIN_ENV) or "/usr/lib/postgresql/*/bin"
        pytest.skip(
            "PostgreSQL server binaries not installed (host capability): no initdb/pg_ctl/"
            f"postgres/psql in {where} (scripts/host-setup.sh installs Debian's postgresql"
            " package)"
        )
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL server cannot run here (host capability): {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def database_backend() -> str:
    return selected_backend()


def fresh_database_url(request: pytest.FixtureRequest) -> str | None:
    """None in SQLite mode; in PostgreSQL mode the URL of a fresh database, dropped when the
    scope of the fixture asking ends (after that fixture's own teardown)."""
    if selected_backend() == "sqlite":
        return None
    # Only a PostgreSQL run starts the server.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    request.addfinalizer(lambda: server.drop_database(name))
    return server.url(name)


def with_database_url(env: dict[str, str], url: str | None) -> dict[str, str]:
    """`env` for a `mininova` subprocess: with `MININOVA_DATABASE_URL=url` when url is set."""
    return {**env, DATABASE_URL_ENV: url} if url else env


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str | None:
    return fresh_database_url(request)


def read_rows(
    url: str | None, sqlite_file: Path, sql: str, params: Sequence[Any] = (), timeout: float = 10
) -> list[dict[str, Any]]:
    """Rows of `sql` (SQLite text with `?` parameters), read-only, for blocking test code.

    SQLite: the file opened read-only. PostgreSQL (`url` set): a connection on a
    private event loop in a worker thread (asyncpg), so this works inside or outside a running loop."""
    if not url:
        uri = f"file:{sqlite_file}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=timeout)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, tuple(params))]

    import re

    import asyncpg

    numbers = iter(range(1, 1000))
    pg_sql = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
    dsn = re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await conn.fetch(pg_sql, *params)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result(timeout=timeout + 30)


async def stored_text(store: Any) -> str:
    """Every value in every table of the store, as one string (for clear-text checks)."""
    from sqlalchemy import select

    from mininova.store import schema

    parts = []
    for table in schema.metadata.sorted_tables:
        for row in await store.all(select(table)):
            parts.extend(str(v) for v in row.values() if v is not None)
    return "\n".join(parts)
