"""Migration 0004 on both backends: the tables, the ids of `private` (stored once), downgrade."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from mininova.store import Store, migrate, networks
from mininova.store.networks import LEGACY_PRIVATE_ID, PRIVATE_NETWORK_KEY, PRIVATE_SUBNET_KEY


async def test_private_ids_are_stored_once(store: Store) -> None:
    assert await store.get_setting(PRIVATE_NETWORK_KEY) == LEGACY_PRIVATE_ID
    subnet_id = await store.get_setting(PRIVATE_SUBNET_KEY)
    assert subnet_id
    assert await networks.private_ids(store) == (LEGACY_PRIVATE_ID, subnet_id)
    assert await networks.private_ids(store) == (LEGACY_PRIVATE_ID, subnet_id)


async def test_downgrade_to_0003_and_back(store: Store) -> None:
    await networks.insert_network(
        store,
        {
            "id": "n1",
            "name": "public",
            "project_id": "p1",
            "external": 1,
            "created_at": "2026-01-01T00:00:00",
            "updated_at": "2026-01-01T00:00:00",
        },
    )

    def downgrade(connection) -> set[str]:
        command.downgrade(migrate.alembic_config(connection), "0003")
        return set(inspect(connection).get_table_names())

    tables = await store.run_sync(downgrade)
    assert "networks" not in tables and "subnets" not in tables
    assert await store.get_setting(PRIVATE_NETWORK_KEY) is None

    def upgrade(connection) -> None:
        command.upgrade(migrate.alembic_config(connection), "head")

    await store.run_sync(upgrade)
    assert await migrate.current_revision(store) == migrate.HEAD
    assert await store.get_setting(PRIVATE_NETWORK_KEY) == LEGACY_PRIVATE_ID
    assert await networks.list_networks(store) == []
