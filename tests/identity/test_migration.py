"""Revision 0003 (project tags, token methods and audit chain) on both backends."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from mininova.store import Store, migrate, schema
from mininova.store import identity as repo

RELEASE_DB = Path(__file__).parent.parent / "store" / "data" / "release-0.1.sqlite"


async def _seed(store: Store) -> None:
    await repo.insert_project(
        store, {"id": "p1", "name": "p1", "created_at": "2026-01-01T00:00:00Z", "tags": ["a", "b"]}
    )
    await repo.insert_user(
        store,
        {"id": "u1", "name": "u1", "password_hash": "x", "created_at": "2026-01-01T00:00:00Z"},
    )
    await repo.insert_role(store, "r1", "role1")
    await repo.grant(store, "u1", "p1", "r1")
    await repo.insert_token(
        store,
        token_hash="h1",
        user_id="u1",
        project_id="p1",
        issued_at="2026-01-01T00:00:00.000000Z",
        expires_at="2026-01-01T01:00:00.000000Z",
        audit_id="audit1",
        methods=["token", "password"],
        parent_audit_id="audit0",
    )


async def test_tags_and_token_fields_round_trip(store: Store) -> None:
    await _seed(store)
    project = await repo.get_project(store, "p1")
    assert project is not None and project["tags"] == ["a", "b"]
    token = await repo.token_identity(store, "h1")
    assert token is not None
    assert token["methods"] == ["token", "password"] and token["parent_audit_id"] == "audit0"


async def test_downgrade_keeps_assignments_and_upgrade_restores_the_columns(store: Store) -> None:
    await _seed(store)

    def downgrade(connection) -> list[str]:
        command.downgrade(migrate.alembic_config(connection), "0002")
        return [c["name"] for c in inspect(connection).get_columns("projects")]

    assert "tags" not in await store.run_sync(downgrade)
    assert await migrate.current_revision(store) == "0002"
    # Dropping the column must not re-create `projects` (its cascades would empty these).
    assert await repo.list_assignments(store, user_id="u1") != []
    assert await repo.roles_for(store, "u1", "p1") == [{"id": "r1", "name": "role1"}]

    def upgrade(connection) -> list:
        command.upgrade(migrate.alembic_config(connection), "head")
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return compare_metadata(context, schema.metadata)

    assert await store.run_sync(upgrade) == []
    assert await migrate.current_revision(store) == migrate.HEAD
    project = await repo.get_project(store, "p1")
    assert project is not None and project["tags"] == []  # the column's default
    token = await repo.token_identity(store, "h1")
    assert token is not None
    assert token["methods"] == ["password"] and token["parent_audit_id"] is None


async def test_release_database_projects_get_empty_tags(tmp_path: Path) -> None:
    path = tmp_path / "mininova.sqlite"
    shutil.copy(RELEASE_DB, path)
    db = Store(path)
    await db.open()
    try:
        assert await db.schema_version() == migrate.HEAD
        rows = await repo.list_projects(db)
        assert {"admin", "service"} <= {p["name"] for p in rows}
        assert all(p["tags"] == [] for p in rows)
        hashes = await db.all(select(schema.tokens.c.token_hash))
        for row in hashes:
            token = await repo.token_identity(db, row["token_hash"])
            assert token is None or token["methods"] == ["password"]
    finally:
        await db.close()
