"""The Store: SQLAlchemy Core statements run on SQLite (embedded default) or PostgreSQL.

How statements run is a measured decision (docs/architecture.md, "The store"):

* **SQLite** runs each statement with the stdlib `sqlite3` module on the event-loop thread.
  A statement on a small WAL database takes microseconds, far less than the thread hop that
  aiosqlite paid per statement. Writes go through one writer connection (SQLite has one writer
  anyway); reads use a second connection, so a read never waits behind an open write
  transaction and sees only committed rows.
* **PostgreSQL** runs on an asyncpg pool; each transaction holds one pooled connection.

Statements are SQLAlchemy Core objects. They are compiled once per dialect and cached when the
repository marks them with `prepared()`, so a hot query costs one dict lookup, not a compile;
the SQL text never leaves `mininova.store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.dialects import sqlite as sqlite_dialects
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import Compiled

from mininova.errors import StorageFull

log = logging.getLogger(__name__)

Row = dict[str, Any]
Params = Mapping[str, Any] | None

_current_tx: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar(
    "mininova_store_tx", default=None
)
_ROWCOUNT = re.compile(r"(\d+)$")

# What the caller sees when the database's disk is full: nothing of the change was written.
DISK_FULL_MESSAGE = (
    "The cloud's database has no disk space left, so this change was not saved. "
    "Reads still work; retry once an administrator has freed space."
)
_PG_DISK_FULL = "53100"  # PostgreSQL's disk_full SQLSTATE


def _is_disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full"), ENOSPC/EDQUOT, PostgreSQL's
    disk_full (53100)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(exc)
        )
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlstate", None) == _PG_DISK_FULL


@contextlib.contextmanager
def _disk_full_as_domain_error() -> Iterator[None]:
    """Re-raise a full disk as `mininova.errors.StorageFull` (the API answers 507)."""
    try:
        yield
    except StorageFull:
        raise
    except Exception as exc:
        if not _is_disk_full(exc):
            raise
        _log_disk_full(exc)
        raise StorageFull(DISK_FULL_MESSAGE) from exc


_disk_full_log = {"at": -1e9, "unlogged": 0}


def _log_disk_full(exc: BaseException, every: float = 10.0) -> None:
    """One error line per `every` seconds while the disk stays full (not one per request)."""
    now = time.monotonic()
    if now - _disk_full_log["at"] < every:
        _disk_full_log["unlogged"] += 1
        return
    more = _disk_full_log["unlogged"]
    _disk_full_log.update(at=now, unlogged=0)
    log.error(
        "database write refused, the disk is full: %s%s",
        exc,
        f" ({more} more since the last report)" if more else "",
    )


# Executions with at most this many values are planned, and at most this many shapes per
# statement: a longer IN (…) list is compiled on each execution (its rows cost more anyway).
PLANNED_VALUES = 4096
PLANNED_SHAPES = 512
# An IN (…) list longer than this is padded to the next power of two with its last value
# again (the same rows), so lists of 257…512 values share one planned shape.
EXACT_LIST_LENGTH = 16


class Prepared:
    """A statement built once at import time and compiled once per dialect.

    Its executions are planned once per shape, too: the same dialect, the same parameter
    names and the same length of each expanding `IN (…)` list give the same SQL text, so the
    text and where each positional value comes from are kept (see `_plan`)."""

    __slots__ = ("statement", "_compiled", "_plans")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}
        self._plans: dict[tuple[Any, ...], _Plan | None] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self.statement.compile(dialect=dialect)
        return found

    def sql_and_args(self, dialect: Dialect, params: Params) -> tuple[str, list[Any]]:
        """SQL text and positional parameters for one execution."""
        given = params or {}
        for value in given.values():
            if isinstance(value, list | tuple) and len(value) > EXACT_LIST_LENGTH:
                given = _padded_lists(self.compiled(dialect), given)
                break
        shape = (
            dialect.name,
            *((k, len(v) if isinstance(v, list | tuple) else -1) for k, v in given.items()),
        )
        try:
            plan = self._plans[shape]
        except KeyError:
            compiled = self.compiled(dialect)
            sql, names, args = _expand(compiled, given)
            if len(args) <= PLANNED_VALUES and len(self._plans) < PLANNED_SHAPES:
                self._plans[shape] = _plan(compiled, given, sql, names, args)
            return sql, args
        if plan is None:  # a shape that cannot be planned (literal values in the text)
            return _compile_once(self.compiled(dialect), given)
        return plan.sql, [
            given[key] if index is None else given[key][index] if index >= 0 else key
            for key, index in plan.sources
        ]


def _padded_lists(compiled: Compiled, params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` with each long expanding list padded to a power of two by its last value."""
    padded = dict(params)
    for key, value in params.items():
        bind = compiled.binds.get(key)
        if bind is None or not bind.expanding or not isinstance(value, list | tuple):
            continue
        if len(value) > EXACT_LIST_LENGTH:
            length = 1 << (len(value) - 1).bit_length()
            padded[key] = [*value, *([value[-1]] * (length - len(value)))]
    return padded


class _Plan:
    """One execution shape of a prepared statement: its SQL text, and for each positional
    value (key, index): `given[key]` (index None), `given[key][index]`, or the constant `key`
    (index -1)."""

    __slots__ = ("sql", "sources")

    def __init__(self, sql: str, sources: list[tuple[Any, int | None]]) -> None:
        self.sql = sql
        self.sources = sources


def _compile_once(compiled: Compiled, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    sql, _names, args = _expand(compiled, params)
    return sql, args


def _expand(compiled: Compiled, params: Mapping[str, Any]) -> tuple[str, Sequence[str], list[Any]]:
    """SQL text, the names of its positional parameters, and their values."""
    if compiled.post_compile_params or compiled.literal_execute_params:
        # Expanding IN (…) lists: this execution's own text, one parameter per item.
        state = compiled.construct_expanded_state(dict(params) if params else None)
        names = state.positiontup or ()
        return state.statement, names, [state.parameters[name] for name in names]
    values = compiled.construct_params(dict(params) if params else None)
    names = compiled.positiontup or ()
    return compiled.string, names, [values[name] for name in names]


def _plan(
    compiled: Compiled,
    params: Mapping[str, Any],
    sql: str,
    names: Sequence[str],
    args: list[Any],
) -> _Plan | None:
    """Where each of `args` (named `names`, as SQLAlchemy worked them out for `params`) comes
    from, or None when that cannot be told by name alone (then every execution is compiled on
    its own)."""
    if compiled.literal_execute_params:
        return None
    expanded = {
        f"{key}_{i + 1}": (key, i)
        for key, value in params.items()
        if compiled.binds.get(key) is not None and compiled.binds[key].expanding
        for i in range(len(value))
    }
    sources: list[tuple[Any, int | None]] = []
    for name, value in zip(names, args, strict=True):
        if name in expanded:
            source: tuple[Any, int | None] = expanded[name]
            found = params[source[0]][source[1]]
        elif name in params:
            source, found = (name, None), params[name]
        else:  # a value written into the statement, e.g. `deleted == 0`
            bind = compiled.binds.get(name)
            if bind is None or bind.callable is not None or bind.value is not value:
                return None
            source, found = (value, -1), value
        if found is not value:
            return None
        sources.append(source)
    return _Plan(sql, sources)


def prepared(statement: ClauseElement) -> Prepared:
    """Mark a module-level statement for the compiled-statement cache."""
    return Prepared(statement)


Statement = ClauseElement | Prepared  # never SQL text: that stays in the repositories' Core

_insert_cache: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Compiled] = {}


def _compile(statement: Statement, dialect: Dialect, params: Params) -> tuple[str, list[Any]]:
    """SQL text and positional parameters for one execution."""
    if isinstance(statement, Prepared):
        return statement.sql_and_args(dialect, params)
    return _compile_once(statement.compile(dialect=dialect), params or {})


def _compile_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...], returning: tuple[str, ...]
) -> Compiled:
    cache_key = (dialect.name, table.name, keys, returning)
    compiled = _insert_cache.get(cache_key)
    if compiled is None:
        statement = insert(table)
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        _insert_cache[cache_key] = compiled
    return compiled


def _numeric(text: str) -> int | float:
    """A PostgreSQL numeric (what SUM of integers gives) as an int when whole, else a float."""
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


class Result:
    """Rows (as dicts) and the changed-row count of one statement."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount


def _written_table(statement: Statement) -> str | None:
    element = statement.statement if isinstance(statement, Prepared) else statement
    if getattr(element, "is_dml", False):
        return element.table.name  # type: ignore[union-attr]
    return None


class Executor:
    """What a transaction and the store both offer: run statements, get dicts back."""

    dialect: Dialect

    def _touched(self, table: str) -> None:
        """A write to `table` happened (counted at commit inside a transaction)."""

    async def _run(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        raise NotImplementedError

    async def execute(self, statement: Statement, params: Params = None) -> int:
        """Run a statement; the number of rows it changed."""
        sql, args = _compile(statement, self.dialect, params)
        count = (await self._run(sql, args, want_rows=False)).rowcount
        table = _written_table(statement)
        if table is not None:
            self._touched(table)
        return count

    async def all(self, statement: Statement, params: Params = None) -> list[Row]:
        sql, args = _compile(statement, self.dialect, params)
        rows = (await self._run(sql, args, want_rows=True)).rows
        table = _written_table(statement)  # DELETE/UPDATE … RETURNING
        if table is not None:
            self._touched(table)
        return rows

    async def one(self, statement: Statement, params: Params = None) -> Row | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def scalar(self, statement: Statement, params: Params = None) -> Any:
        row = await self.one(statement, params)
        return next(iter(row.values())) if row else None

    async def insert(
        self, table: Table, values: Mapping[str, Any], *, returning: Sequence[str] = ()
    ) -> Row | None:
        """INSERT one row given as a dict; with `returning`, those columns of the new row."""
        keys = tuple(sorted(values))
        compiled = _compile_insert(self.dialect, table, keys, tuple(returning))
        args = [values[name] for name in compiled.positiontup or ()]
        result = await self._run(compiled.string, args, want_rows=bool(returning))
        self._touched(table.name)
        return result.rows[0] if returning and result.rows else None

    async def upsert(
        self,
        table: Table,
        values: Mapping[str, Any],
        *,
        conflict: Sequence[str],
        keep: Sequence[str] = (),
    ) -> None:
        """INSERT, or UPDATE the other columns (but `keep`) when a row with the same `conflict`
        key exists."""
        keys = tuple(sorted(values))
        unchanged = tuple(conflict) + tuple(keep)
        cache_key = (self.dialect.name, table.name, keys, ("upsert",) + unchanged)
        compiled = _insert_cache.get(cache_key)
        if compiled is None:
            if self.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            statement = dialect_insert(table)
            changed = {k: statement.excluded[k] for k in keys if k not in unchanged}
            statement = statement.on_conflict_do_update(index_elements=list(conflict), set_=changed)
            compiled = statement.compile(dialect=self.dialect, column_keys=list(keys))
            _insert_cache[cache_key] = compiled
        args = [values[name] for name in compiled.positiontup or ()]
        await self._run(compiled.string, args, want_rows=False)
        self._touched(table.name)


class Transaction(Executor):
    """Statements inside one BEGIN … COMMIT. Obtain it from `Store.transaction()`."""

    def __init__(self, store: Store, connection: Any) -> None:
        self.store = store
        self.dialect = store.dialect
        self._connection = connection
        self.touched: set[str] = set()

    def _touched(self, table: str) -> None:
        self.touched.add(table)

    async def _run(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        return await self.store._backend.run(self._connection, sql, args, want_rows=want_rows)

    async def lock(self, key: str) -> None:
        """Serialise transactions that share `key` (e.g. a project's quota) until commit.

        SQLite needs nothing: BEGIN IMMEDIATE already makes writers take turns. PostgreSQL
        takes a transaction-scoped advisory lock.
        """
        await self.store._backend.lock(self._connection, key)


class Store(Executor):
    """The database: `transaction()` for atomic groups, direct methods for single statements.

    Inside `async with store.transaction()`, the store's own methods join that transaction
    (a context variable carries it), so repository functions work in and out of one.
    """

    def __init__(self, url: Path | str) -> None:
        text = str(url)
        if text.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            self._backend: _Backend = _PostgresBackend(text)
        else:
            if text.startswith("sqlite:///"):
                text = text[len("sqlite:///") :]
            self._backend = _SqliteBackend(text)
        self.url = text
        self.dialect = self._backend.dialect
        self._generations: dict[str, int] = {}
        self._commits = 0

    async def change_marker(self) -> tuple[int, Any]:
        """A value that differs after any committed write to the database, this process's or
        another's: a cache of what was read after taking it is good while it is unchanged.

        Take it *before* reading: a write that lands between the two then only makes the next
        comparison miss. SQLite: `PRAGMA data_version` on the reading connection (it moves on
        every commit of any other connection, this process's writer included). PostgreSQL: the
        current snapshot (any transaction that wrote has an xid that moves xmax or leaves the
        in-progress list).
        """
        return (self._commits, await self._backend.change_marker())

    def generation(self, table: str) -> int:
        """How many committed writes to `table` this process has made: in-process caches
        (the scheduler's host state) reload when it moves.

        scale-out seam: other controllers' writes would arrive as NOTIFY and bump it too.
        """
        return self._generations.get(table, 0)

    def _touched(self, table: str) -> None:
        tx = _current_tx.get()
        if tx is not None and tx.store is self:
            tx.touched.add(table)
        else:
            self._generations[table] = self._generations.get(table, 0) + 1
            self._commits += 1

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.dialect.name

    async def open(self, *, migrate: bool = True, migrate_in_subprocess: bool = False) -> None:
        await self._backend.open()
        if migrate:
            from mininova.store import migrate as migrations

            await migrations.upgrade(self, in_subprocess=migrate_in_subprocess)

    async def close(self) -> None:
        await self._backend.close()

    async def _run(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        tx = _current_tx.get()
        if tx is not None and tx.store is self:
            return await tx._run(sql, args, want_rows=want_rows)
        return await self._backend.run_alone(sql, args, want_rows=want_rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """BEGIN … COMMIT, rolled back on any exception; nested calls join the outer one."""
        outer = _current_tx.get()
        if outer is not None and outer.store is self:
            yield outer
            return
        async with self._backend.transaction() as connection:
            tx = Transaction(self, connection)
            token = _current_tx.set(tx)
            try:
                yield tx
            finally:
                _current_tx.reset(token)
        self._commits += 1
        for table in tx.touched:  # committed
            self._generations[table] = self._generations.get(table, 0) + 1

    async def get_setting(self, key: str) -> str | None:
        from mininova.store import settings

        return await settings.get(self, key)

    async def set_setting(self, key: str, value: str) -> None:
        from mininova.store import settings

        await settings.put(self, key, value)

    async def schema_version(self) -> str | None:
        """The Alembic revision the database is at."""
        from mininova.store import migrate

        return await migrate.current_revision(self)

    async def seed_sequence(self, table: Table, start: int) -> None:
        """Make the next id of `table`'s serial primary key `start` + 1 (empty tables only)."""
        await self._backend.seed_sequence(self, table, start)

    async def run_sync(self, fn: Any) -> Any:
        """Run `fn(sqlalchemy_connection)` (Alembic) on a SQLAlchemy connection of this DB."""
        try:
            return await self._backend.run_sync(fn)
        finally:
            self._commits += 1


class _Backend:
    dialect: Dialect

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def run(self, connection: Any, sql: str, args: Sequence[Any], *, want_rows: bool):
        raise NotImplementedError

    async def run_alone(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        raise NotImplementedError

    def transaction(self) -> Any:
        raise NotImplementedError

    async def lock(self, connection: Any, key: str) -> None: ...

    async def change_marker(self) -> Any:
        raise NotImplementedError

    async def seed_sequence(self, store: Store, table: Table, start: int) -> None:
        raise NotImplementedError

    async def run_sync(self, fn: Any) -> Any:
        raise NotImplementedError


# How often the WAL is copied back into the database file (s), off the loop thread.
CHECKPOINT_INTERVAL = 0.5


class _SqliteBackend(_Backend):
    """sqlite3 on the loop thread: one writer connection, one reader connection. The WAL is
    checkpointed by a task on a third connection in a worker thread, not by whichever commit
    fills it: a checkpoint writes the database file and fsyncs it, which would stall the loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dialect = sqlite_dialects.pysqlite.dialect()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._checkpoints: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._commits = 0  # writes since the last checkpoint began

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=2000")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    async def open(self) -> None:
        if self.path != ":memory:":
            # SQLite gives -wal and -shm the database file's mode: make that 0600 first.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(self.path + suffix, 0o600)
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        # An in-memory database exists once per connection: read through the writer there.
        self._reader = self._writer if self.path == ":memory:" else self._connect()
        if self.path != ":memory:":
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._closing = asyncio.Event()  # a store closed before may be opened again
            self._checkpoints = asyncio.create_task(self._checkpoint_loop(), name="wal-checkpoint")

    async def close(self) -> None:
        if self._checkpoints is not None:
            self._closing.set()  # not cancelled: a checkpoint under way ends first
            await self._checkpoints
            self._checkpoints = None
        for connection in {id(c): c for c in (self._reader, self._writer) if c}.values():
            connection.close()  # the last one to close checkpoints what is left
        self._writer = self._reader = None

    async def _checkpoint_loop(self) -> None:
        """Checkpoint the WAL every CHECKPOINT_INTERVAL while there were writes (PASSIVE:
        writers and readers go on meanwhile) until `close`, on a connection of its own that
        only one worker thread touches: its checkpoints and its close run there in turn, so
        the connection is never closed under a checkpoint, cancelled or not."""
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        held: list[sqlite3.Connection] = []
        try:
            await loop.run_in_executor(thread, lambda: held.append(self._connect()))
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), CHECKPOINT_INTERVAL)
                    return
                if not self._commits:
                    continue
                self._commits = 0
                try:
                    await asyncio.shield(loop.run_in_executor(thread, _checkpoint, held[0]))
                except sqlite3.Error as exc:  # busy, disk full: the next round retries
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            thread.submit(lambda: [c.close() for c in held])
            thread.shutdown(wait=False)  # the close runs after any checkpoint under way

    @property
    def writer(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    @staticmethod
    def _cursor_result(cursor: sqlite3.Cursor, want_rows: bool) -> Result:
        rows: list[Row] = []
        if want_rows and cursor.description is not None:
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        count = cursor.rowcount
        cursor.close()
        return Result(rows, count)

    async def run(self, connection: Any, sql: str, args: Sequence[Any], *, want_rows: bool):
        with _disk_full_as_domain_error():
            return self._cursor_result(connection.execute(sql, args), want_rows)

    async def run_alone(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        if self._reader is None:
            raise RuntimeError("store is not open")
        if sql.lstrip()[:6].upper() == "SELECT":
            return self._cursor_result(self._reader.execute(sql, args), want_rows)
        async with self._write_lock:
            self._commits += 1
            with _disk_full_as_domain_error():
                return self._cursor_result(self.writer.execute(sql, args), want_rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        async with self._write_lock:
            writer = self.writer
            with _disk_full_as_domain_error():
                writer.execute("BEGIN IMMEDIATE")
            try:
                yield writer
                self._commits += 1
                with _disk_full_as_domain_error():
                    writer.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (SQLITE_FULL does): never leave the one
                # writer connection inside a transaction, or every later BEGIN would fail.
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise

    async def change_marker(self) -> int:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader.execute("PRAGMA data_version").fetchone()[0]

    async def seed_sequence(self, store: Store, table: Table, start: int) -> None:
        from mininova.store.schema import sqlite_sequence

        async with store.transaction() as tx:
            await tx.execute(delete(sqlite_sequence).where(sqlite_sequence.c.name == table.name))
            await tx.insert(sqlite_sequence, {"name": table.name, "seq": start})

    async def run_sync(self, fn: Any) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import StaticPool

        async with self._write_lock:
            writer = self.writer
            engine = create_engine("sqlite://", creator=lambda: writer, poolclass=StaticPool)
            try:
                with engine.begin() as connection:
                    return fn(connection)
            finally:
                engine.dispose(close=False)


def _checkpoint(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


async def _decode_numeric(connection: Any) -> None:
    """numeric values arrive as int/float (`_numeric`), decoded once by asyncpg, not as
    Decimals converted in every row."""
    await connection.set_type_codec(
        "numeric", schema="pg_catalog", encoder=str, decoder=_numeric, format="text"
    )


async def _session_kept(connection: Any) -> None:
    """The pool's reset of a released connection: nothing beyond asyncpg's own rollback of an
    open transaction. The store sets no session state (no SET, LISTEN, cursors or session
    advisory locks: `lock` is transaction-scoped), so asyncpg's default reset query (RESET
    ALL, UNLISTEN *, …) would only cost a round trip per statement."""


class _PostgresBackend(_Backend):
    """asyncpg pool; a transaction holds one connection until it commits."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialects

        self.url = url
        self.dialect = asyncpg_dialects.dialect()
        self._pool: Any = None

    def _dsn(self) -> str:
        return re.sub(r"^postgres(ql)?(\+asyncpg)?://", "postgresql://", self.url)

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self._dsn(), min_size=1, max_size=8, init=_decode_numeric, reset=_session_kept
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def run(self, connection: Any, sql: str, args: Sequence[Any], *, want_rows: bool):
        with _disk_full_as_domain_error():
            if want_rows:
                records = await connection.fetch(sql, *args)
                rows = [dict(record.items()) for record in records]
                return Result(rows, len(rows))
            status = await connection.execute(sql, *args)
        match = _ROWCOUNT.search(status or "")
        return Result([], int(match.group(1)) if match else 0)

    async def run_alone(self, sql: str, args: Sequence[Any], *, want_rows: bool) -> Result:
        async with self._pool.acquire() as connection:
            return await self.run(connection, sql, args, want_rows=want_rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        with _disk_full_as_domain_error():  # the COMMIT (WAL write) may find the disk full
            async with self._pool.acquire() as connection, connection.transaction():
                yield connection

    async def lock(self, connection: Any, key: str) -> None:
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)

    async def change_marker(self) -> str:
        async with self._pool.acquire() as connection:
            return await connection.fetchval("SELECT pg_current_snapshot()::text")

    async def seed_sequence(self, store: Store, table: Table, start: int) -> None:
        await store.scalar(
            select(func.setval(func.pg_get_serial_sequence(table.name, "id"), start, True))
        )

    async def run_sync(self, fn: Any) -> Any:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(
            re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", self.url)
        )
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(fn)
        finally:
            await engine.dispose()
