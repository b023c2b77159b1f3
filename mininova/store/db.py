"""The Store: one aiosqlite connection (single writer), WAL, migrations on open."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from mininova.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

Row = dict[str, Any]

_in_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar("in_tx", default=False)


class Store:
    """Thin async access to the SQLite database.

    All writes go through this one connection, so SQLite sees a single writer. `transaction()`
    groups statements atomically: either every row lands or none does.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self.path != ":memory:":
            # SQLite gives -wal and -shm the database file's mode: make that 0600 first.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(self.path + suffix, 0o600)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def _migrate(self) -> None:
        await self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = await self.fetchone("SELECT MAX(version) AS v FROM schema_version")
        current = (row or {}).get("v") or 0
        for number, sql in MIGRATIONS:
            if number <= current:
                continue
            log.info("applying schema migration %d", number)
            async with self.transaction():
                for statement in _split_sql(sql):
                    await self.db.execute(statement)
                await self.db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT MAX(version) AS v FROM schema_version")
        return int((row or {}).get("v") or 0)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception.

        The connection is shared, so a transaction holds the store lock: no other coroutine's
        statement can slip into it or see its uncommitted rows.
        """
        if _in_transaction.get():
            yield self.db  # nested: part of the outer transaction
            return
        async with self._lock:
            token = _in_transaction.set(True)
            try:
                await self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    await self.db.execute("ROLLBACK")
                    raise
                await self.db.execute("COMMIT")
            finally:
                _in_transaction.reset(token)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        if _in_transaction.get():
            yield
        else:
            async with self._lock:
                yield

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of changed rows."""
        async with self._turn():
            cursor = await self.db.execute(sql, tuple(params))
            count = cursor.rowcount
            await cursor.close()
        return count

    async def insert(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run an INSERT; returns the new rowid."""
        async with self._turn():
            cursor = await self.db.execute(sql, tuple(params))
            rowid = cursor.lastrowid
            await cursor.close()
        return int(rowid or 0)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self._turn():
            cursor = await self.db.execute(sql, tuple(params))
            row = await cursor.fetchone()
            await cursor.close()
        return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._turn():
            cursor = await self.db.execute(sql, tuple(params))
            rows = await cursor.fetchall()
            await cursor.close()
        return [dict(r) for r in rows]

    async def get_setting(self, key: str) -> str | None:
        row = await self.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return row["value"] if row else None

    async def set_setting(self, key: str, value: str) -> None:
        await self.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def _split_sql(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None, default: Any = None) -> Any:
    if text is None or text == "":
        return default
    return json.loads(text)
