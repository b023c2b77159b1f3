"""Schema migrations with Alembic; databases made by the pre-Alembic releases upgrade in place.

Releases up to 0.1 numbered their migrations in a `schema_version` table (kept in
`mininova.store.legacy`). Such a database is first brought to legacy version 3, whose schema
is exactly Alembic's baseline revision `0001`, stamped as such, and then upgraded to head.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, String, Table, inspect, select, text

from mininova.store.legacy import MIGRATIONS as LEGACY_MIGRATIONS

if TYPE_CHECKING:
    from mininova.store.engine import Store

log = logging.getLogger(__name__)

BASELINE = "0001"
LEGACY_BASELINE_VERSION = 3
# The newest revision in alembic/versions (a test checks). A database already there opens
# without importing Alembic at all, which keeps ~10 MB out of every controller's memory.
HEAD = "0008"
URL_ENV = "MININOVA_MIGRATE_URL"

_alembic_version = Table("alembic_version", MetaData(), Column("version_num", String(32)))


def alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "alembic"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or BASELINE


def _upgrade_legacy(connection: Any) -> None:
    from alembic import command

    current = connection.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0
    raw = connection.connection.dbapi_connection
    for number, sql in LEGACY_MIGRATIONS:
        if number <= current:
            continue
        log.info("applying legacy schema migration %d", number)
        raw.execute("BEGIN IMMEDIATE")
        try:
            for statement in (s.strip() for s in sql.split(";")):
                if statement:
                    raw.execute(statement)
            raw.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
    raw.execute("DROP TABLE schema_version")
    command.stamp(alembic_config(connection), BASELINE)


def _upgrade(connection: Any) -> None:
    from alembic import command

    tables = set(inspect(connection).get_table_names())
    if "schema_version" in tables:
        _upgrade_legacy(connection)
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def _recorded_revision(store: Store) -> str | None:
    try:
        return await store.scalar(select(_alembic_version.c.version_num))
    except Exception:  # no such table yet: a new or a pre-Alembic database
        return None


async def upgrade(store: Store, *, in_subprocess: bool = False) -> None:
    """Bring the database to the newest revision (creating it when empty).

    `in_subprocess` runs Alembic in a child process (`python -m mininova.store.migrate URL`),
    so a long-running controller never carries Alembic's ~14 MB; tests migrate in-process.
    """
    if await _recorded_revision(store) == HEAD:
        return
    if not in_subprocess:
        await store.run_sync(_upgrade)
        return
    # The URL travels in the environment: it may hold a password, which ps would show.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mininova.store.migrate",
        env={**os.environ, URL_ENV: store.url},
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"database migration failed: {err.decode(errors='replace')[-2000:]}")
    if await _recorded_revision(store) != HEAD:
        raise RuntimeError("database migration did not reach " + HEAD)


async def current_revision(store: Store) -> str | None:
    return await store.run_sync(_current)


async def _migrate_main(url: str) -> None:
    from mininova.store.engine import Store

    store = Store(url)
    await store.open(migrate=False)
    try:
        await store.run_sync(_upgrade)
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(_migrate_main(os.environ[URL_ENV]))
