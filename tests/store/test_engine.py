"""The store engine on both backends: migrations, transactions, reads beside writes."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import bindparam, func, select

from mininova.identity.service import check_password
from mininova.store import Store, migrate, schema, settings
from tests.kit.rows import add_instance

RELEASE_DB = Path(__file__).parent / "data" / "release-0.1.sqlite"
# The admin password that release 0.1's bootstrap wrote into that database's
# admin-credentials file when the fixture was made.
RELEASE_ADMIN_PASSWORD = "MtU48G420XjHwKga"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = str(tmp_path / "db.sqlite")
    else:
        server = request.getfixturevalue("postgres_server")
        name = server.create_database()
        request.addfinalizer(lambda: server.drop_database(name))
        url = server.url(name)
    db = Store(url)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def _differences(connection) -> list:
    return compare_metadata(
        MigrationContext.configure(connection, opts={"compare_type": False}), schema.metadata
    )


def _legacy_differences(connection) -> list:
    """Differences beyond two spellings of the same SQLite schema.

    Release 0.1 wrote `TEXT PRIMARY KEY` (SQLite reports such a column nullable) and inline
    `REFERENCES … ON DELETE CASCADE`, which SQLAlchemy reflects without its ON DELETE; the
    foreign keys are checked with PRAGMA instead.
    """
    left = []
    for diff in _differences(connection):
        if isinstance(diff, list) and diff[0][0] == "modify_nullable":
            table, column = diff[0][2], diff[0][3]
            if column in schema.metadata.tables[table].primary_key.columns:
                continue
        if isinstance(diff, tuple) and diff[0] in ("remove_fk", "add_fk"):
            continue
        left.append(diff)
    raw = connection.connection.dbapi_connection
    for table in schema.metadata.sorted_tables:
        for fk in table.foreign_keys:
            rows = raw.execute(f"PRAGMA foreign_key_list({table.name})").fetchall()
            actions = {(r[3], r[2], r[6]) for r in rows}  # (from column, to table, on_delete)
            wanted = (fk.parent.name, fk.column.table.name, fk.ondelete or "NO ACTION")
            if wanted not in actions:
                left.append(("foreign key differs", table.name, wanted, actions))
    return left


async def test_new_database_is_at_head_and_matches_the_metadata(store: Store) -> None:
    assert await store.schema_version() == migrate.head()
    assert await store.run_sync(_differences) == []


async def test_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await settings.put(tx, "a", "1")
            assert await settings.get(tx, "a") == "1"
            raise RuntimeError("crash half-way")
    assert await settings.get(store, "a") is None


async def test_reads_do_not_wait_behind_an_open_write(store: Store) -> None:
    await settings.put(store, "k", "old")
    written = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with store.transaction() as tx:
            await settings.put(tx, "k", "new")
            written.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await written.wait()
    # The write is open: a read outside it answers at once, with the committed value.
    assert await asyncio.wait_for(settings.get(store, "k"), 5) == "old"
    release.set()
    await task
    assert await settings.get(store, "k") == "new"


async def test_locked_check_then_insert_is_serialised(store: Store) -> None:
    """Two transactions that check a count then insert under one lock never both pass."""
    count = select(func.count()).select_from(schema.settings)
    count = count.where(schema.settings.c.key.like(bindparam("prefix")))

    async def claim(n: int) -> bool:
        async with store.transaction() as tx:
            await tx.lock("quota:p1")
            used = await tx.scalar(count, {"prefix": "slot-%"})
            await asyncio.sleep(0)  # let the other claim run if it can
            if used >= 1:
                return False
            await tx.insert(schema.settings, {"key": f"slot-{n}", "value": "x"})
            return True

    results = await asyncio.gather(*(claim(n) for n in range(5)))
    assert sorted(results) == [False, False, False, False, True]


async def test_connections_come_back_clean_after_failed_and_locked_transactions(
    store: Store,
) -> None:
    """A released connection keeps no transaction and no lock (PostgreSQL's pool resets
    nothing more than that): after more failed, locked transactions than the pool holds, the
    lock is free again and each write outside a transaction is committed at once."""
    for n in range(12):
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.lock("quota:p1")
                await settings.put(tx, f"failed-{n}", "1")
                raise RuntimeError("crash half-way")

    async def locked(n: int) -> None:
        async with store.transaction() as tx:
            await tx.lock("quota:p1")
            await settings.put(tx, f"locked-{n}", "1")

    await asyncio.wait_for(asyncio.gather(*(locked(n) for n in range(12))), 10)
    for n in range(12):
        await settings.put(store, f"alone-{n}", "1")
    keys = await store.all(select(schema.settings.c.key))
    names = {row["key"] for row in keys}
    assert not any(name.startswith("failed-") for name in names)
    assert {f"locked-{n}" for n in range(12)} | {f"alone-{n}" for n in range(12)} <= names


def _autoincrement_tables(connection) -> set[str]:
    raw = connection.connection.dbapi_connection
    rows = raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for name, sql in rows if "AUTOINCREMENT" in (sql or "").upper()}


async def test_sqlite_tables_keep_autoincrement(tmp_path: Path) -> None:
    """Every table declared AUTOINCREMENT is so in a migrated database (a batch copy once
    dropped it from `instances`, and every cloud's first guest became instance-00000001)."""
    db = Store(tmp_path / "db.sqlite")
    await db.open()
    try:
        wanted = {
            t.name
            for t in schema.metadata.sorted_tables
            if t.dialect_kwargs.get("sqlite_autoincrement")
        }
        assert "instances" in wanted
        assert wanted <= await db.run_sync(_autoincrement_tables)
    finally:
        await db.close()


async def test_seeded_instance_ids_start_after_the_seed(store: Store) -> None:
    """Bootstrap's random first instance id holds on both backends: guests of two clouds on one
    libvirtd get different `instance-<id>` domain names."""
    await store.seed_sequence(schema.instances, 70000)
    for name in ("a", "b"):
        await add_instance(store, str(uuid.uuid4()), name=name)
    rows = await store.all(select(schema.instances.c.id).order_by(schema.instances.c.id))
    assert [r["id"] for r in rows] == [70001, 70002]


async def test_insert_returning_upsert_and_sequence_seed(store: Store) -> None:
    await store.seed_sequence(schema.instances, 70000)
    row = await store.insert(
        schema.keypairs,
        {"user_id": "u", "name": "k", "public_key": "p", "fingerprint": "f", "created_at": "t"},
        returning=("id",),
    )
    assert row is not None and isinstance(row["id"], int)
    await settings.put(store, "x", "1")
    await settings.put(store, "x", "2")
    assert await settings.get(store, "x") == "2"
    total = await store.scalar(select(func.coalesce(func.sum(schema.keypairs.c.id), 0)))
    assert total == row["id"] and isinstance(total, int)


async def test_release_database_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "mininova.sqlite"
    shutil.copy(RELEASE_DB, path)
    db = Store(path)
    await db.open()
    try:
        assert await db.schema_version() == migrate.head()
        assert await db.run_sync(_legacy_differences) == []
        users = schema.users
        admin = await db.one(select(users).where(users.c.name == "admin"))
        assert admin is not None and check_password(RELEASE_ADMIN_PASSWORD, admin["password_hash"])
        vm = await db.one(select(schema.instances).where(schema.instances.c.name == "old-vm"))
        assert vm is not None and vm["host"] == "host-a" and vm["vm_state"] == "active"
        # Revision 0002 copied the flavor's resources into columns.
        assert (vm["vcpus"], vm["memory_mb"], vm["root_gb"]) == (1, 128, 1)
        assert await db.scalar(select(func.count()).select_from(schema.flavors)) >= 1
        assert await settings.get(db, "bootstrapped") == "1"
    finally:
        await db.close()
    # Opening again changes nothing.
    db = Store(path)
    await db.open()
    try:
        assert await db.schema_version() == migrate.head()
    finally:
        await db.close()


async def test_expanding_in_lists_on_a_prepared_statement(store: Store) -> None:
    from mininova.store.engine import prepared

    table = schema.settings
    query = prepared(
        select(table.c.key)
        .where(table.c.key.in_(bindparam("keys", expanding=True)))
        .order_by(table.c.key)
    )
    for key in ("a", "b", "c"):
        await settings.put(store, key, "v")
    assert [r["key"] for r in await store.all(query, {"keys": ["c", "a"]})] == ["a", "c"]
    assert [r["key"] for r in await store.all(query, {"keys": ["b"]})] == ["b"]
    assert await store.all(query, {"keys": []}) == []


async def test_planned_executions_match_a_compile_each_time(store: Store) -> None:
    """A prepared statement run again in the same shape (parameter names, IN list lengths)
    reuses its planned text: the rows, the SQL text and the values are what a compile of that
    one execution gives, for plain, constant and expanding parameters alike."""
    from mininova.store.engine import _compile_once, prepared

    table = schema.settings
    query = prepared(
        select(table.c.key, table.c.value)
        .where(table.c.key.in_(bindparam("keys", expanding=True)))
        .where(table.c.value != "gone")  # a constant written into the statement
        .where(table.c.value != bindparam("unless"))
        .order_by(table.c.key)
    )
    for key, value in (("a", "1"), ("b", "2"), ("c", "gone"), ("d", "4")):
        await settings.put(store, key, value)
    runs = [
        ({"keys": ["a", "b", "c"], "unless": "2"}, ["a"]),
        ({"keys": ["d", "c", "b"], "unless": "9"}, ["b", "d"]),  # same shape, other values
        ({"keys": ["d"], "unless": "1"}, ["d"]),
        ({"keys": [], "unless": "1"}, []),
        ({"keys": ["a", "d"], "unless": "4"}, ["a"]),
        ({"keys": ["b", "a"], "unless": "x"}, ["a", "b"]),
    ]
    for params, keys in runs:
        assert [r["key"] for r in await store.all(query, params)] == keys
        expected = _compile_once(query.compiled(store.dialect), params)
        assert query.sql_and_args(store.dialect, params) == expected
    assert all(plan is not None for plan in query._plans.values())
    assert len(query._plans) == 4  # lengths 3, 1, 0 and 2 of the IN list


async def test_long_in_lists_share_a_planned_shape_and_find_the_same_rows(store: Store) -> None:
    """IN lists longer than EXACT_LIST_LENGTH are padded to a power of two by their last
    value: 300 and 400 keys use one planned text of 512 values, and the rows are those of
    the exact list."""
    from mininova.store.engine import _compile_once, prepared

    table = schema.settings
    query = prepared(
        select(table.c.key)
        .where(table.c.key.in_(bindparam("keys", expanding=True)))
        .order_by(table.c.key)
    )
    for key in ("k007", "k150", "k299", "k350"):
        await settings.put(store, key, "v")
    for count, found in ((300, ["k007", "k150", "k299"]), (400, ["k007", "k150", "k299", "k350"])):
        params = {"keys": [f"k{i:03d}" for i in range(count)]}
        assert [r["key"] for r in await store.all(query, params)] == found
        sql, args = query.sql_and_args(store.dialect, params)
        exact_sql, exact_args = _compile_once(query.compiled(store.dialect), params)
        assert len(exact_args) == count and len(args) == 512
        assert args[:count] == exact_args and set(args[count:]) == {exact_args[-1]}
        assert sql != exact_sql
    assert len(query._plans) == 1


def test_the_recorded_head_is_alembic_head() -> None:
    assert migrate.HEAD == migrate.head()


async def test_migration_in_a_child_process(tmp_path: Path) -> None:
    """What `mininova serve` does: Alembic runs in a child, the parent sees the new schema."""
    path = tmp_path / "mininova.sqlite"
    shutil.copy(RELEASE_DB, path)
    db = Store(path)
    await db.open(migrate_in_subprocess=True)
    try:
        assert await db.schema_version() == migrate.head()
        vm = await db.one(select(schema.instances).where(schema.instances.c.name == "old-vm"))
        assert vm is not None and vm["memory_mb"] == 128
    finally:
        await db.close()
