"""pytest fixtures for the database backends (registered in tests/conftest.py's pytest_plugins).

* `postgres_server` (session): a started `tests.kit.postgres.PostgresServer`; skips the test
  when this host has no PostgreSQL server binaries. Stopped at the end of the session.
* `postgres_database` (function): the name of a fresh database on it, dropped after the test.
* `database_backend` (session): "sqlite" or "postgresql", from `MININOVA_TEST_DATABASE`
  (default sqlite).
* `database_url` (function): None for sqlite (the store's default file) or the
  `postgresql+asyncpg://…` URL of a fresh database, dropped after the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kit.postgres import PG_BIN_ENV, PostgresServer, PostgresUnavailable, find_pg_bin

BACKEND_ENV = "MININOVA_TEST_DATABASE"
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


@pytest.fixture
def database_url(database_backend: str, request: pytest.FixtureRequest) -> Iterator[str | None]:
    if database_backend == "sqlite":
        yield None
        return
    # Only a PostgreSQL run starts the server.
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)
