"""The throwaway PostgreSQL server of the test kit: it starts, serves asyncpg, isolates databases."""

from __future__ import annotations

import asyncpg

from tests.kit.pg_fixtures import selected_backend
from tests.kit.postgres import NEEDED, PostgresServer, find_pg_bin


async def test_select_one_on_a_fresh_database(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    url = postgres_server.url(postgres_database)
    assert url == (
        f"postgresql+asyncpg://postgres@127.0.0.1:{postgres_server.port}/{postgres_database}"
    )
    conn = await asyncpg.connect(postgres_server.dsn(postgres_database))
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == postgres_database
        assert await conn.fetchval("SHOW fsync") == "off"
    finally:
        await conn.close()


async def test_created_databases_are_distinct(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database()
    second = postgres_server.create_database()
    try:
        assert first != second
        a = await asyncpg.connect(postgres_server.dsn(first))
        b = await asyncpg.connect(postgres_server.dsn(second))
        try:
            await a.execute("CREATE TABLE only_in_first (id int)")
            assert await a.fetchval("SELECT to_regclass('only_in_first') IS NOT NULL")
            assert await b.fetchval("SELECT to_regclass('only_in_first') IS NULL")
        finally:
            await a.close()
            await b.close()
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)
    names = postgres_server.psql("SELECT datname FROM pg_database").split()
    assert first not in names and second not in names


def test_server_is_the_throwaway_one_and_not_root(postgres_server: PostgresServer) -> None:
    data_dir = postgres_server.psql("SELECT current_setting('data_directory')").strip()
    assert data_dir == str(postgres_server.data_dir)
    assert postgres_server.data_dir.stat().st_uid != 0  # PostgreSQL refuses to run as root


def test_database_url_follows_the_backend_switch(database_url: str | None) -> None:
    if selected_backend() == "sqlite":
        assert database_url is None
    else:
        assert database_url is not None
        assert database_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")


def test_find_pg_bin_picks_the_newest_complete_version(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("MININOVA_PG_BIN", raising=False)
    for version, names in (("9.6", NEEDED), ("15", NEEDED), ("16", ("psql",))):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in names:
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
    assert find_pg_bin(tmp_path) == tmp_path / "15" / "bin"
    assert find_pg_bin(tmp_path / "nothing-here") is None
