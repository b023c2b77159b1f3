"""Schema migrations with Alembic; databases made by the pre-Alembic releases upgrade in place.

Releases up to 0.1 numbered their migrations in a `schema_version` table (kept in
`mininova.store.legacy`). Such a database is first brought to legacy version 3, whose schema
is exactly Alembic's baseline revision `0001`, stamped as such, and then upgraded to head.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from mininova.store.legacy import MIGRATIONS as LEGACY_MIGRATIONS

if TYPE_CHECKING:
    from mininova.store.engine import Store

log = logging.getLogger(__name__)

BASELINE = "0001"
LEGACY_BASELINE_VERSION = 3


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "alembic"))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or BASELINE


def _upgrade_legacy(connection: Any) -> None:
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
    tables = set(inspect(connection).get_table_names())
    if "schema_version" in tables:
        _upgrade_legacy(connection)
    command.upgrade(alembic_config(connection), "head")


def _current(connection: Any) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(store: Store) -> None:
    """Bring the database to the newest revision (creating it when empty)."""
    await store.run_sync(_upgrade)


async def current_revision(store: Store) -> str | None:
    return await store.run_sync(_current)
