"""Instances carry their flavor's vcpus/memory_mb/root_gb; hosts get forced_down; claims an index.

Quota usage becomes one aggregate over the instances table instead of decoding every live
instance's flavor document, and `forced_down` leaves the settings table for compute_nodes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy), so SQLite keeps the tables' AUTOINCREMENT counters.
    for name in ("vcpus", "memory_mb", "root_gb"):
        op.add_column(
            "instances", sa.Column(name, Int, nullable=False, server_default=sa.text("0"))
        )
    op.create_index("allocations_host", "allocations", ["host"])
    op.create_index("instances_usage", "instances", ["project_id", "deleted", "vcpus", "memory_mb"])
    op.add_column(
        "compute_nodes", sa.Column("forced_down", Int, nullable=False, server_default=sa.text("0"))
    )
    if op.get_bind().dialect.name == "postgresql":
        field = "COALESCE((flavor::json->>'{0}')::bigint, 0)"
    else:
        field = "COALESCE(json_extract(flavor, '$.{0}'), 0)"
    op.execute(
        f"UPDATE instances SET vcpus = {field.format('vcpus')},"
        f" memory_mb = {field.format('ram')}, root_gb = {field.format('disk')}"
    )
    op.execute(
        "UPDATE compute_nodes SET forced_down = 1 WHERE 'service_forced_down:' || host IN"
        " (SELECT key FROM settings WHERE value = '1')"
    )
    op.execute("DELETE FROM settings WHERE substr(key, 1, 20) = 'service_forced_down:'")


def downgrade() -> None:
    op.drop_index("allocations_host", "allocations")
    op.drop_index("instances_usage", "instances")
    with op.batch_alter_table("compute_nodes") as batch:
        batch.drop_column("forced_down")
    with op.batch_alter_table("instances") as batch:
        for name in ("vcpus", "memory_mb", "root_gb"):
            batch.drop_column(name)
