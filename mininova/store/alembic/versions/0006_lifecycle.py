"""Server lifecycle: system metadata and soft-delete time on instances; the migrations table.

Revision ID: 0006
Revises: 0005

`instances.system_metadata` is Nova's per-instance system metadata (a JSON object: the server
password, the shelved image, the flavors of a resize); `instances.deleted_at` is when a server
was (soft) deleted. `migrations` holds one row per resize or cold migration, as Nova's table
of that name: the source allocation of a resize is held under the migration's uuid.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column("system_metadata", sa.Text(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.add_column(sa.Column("deleted_at", sa.Text(), nullable=True))
    op.create_table(
        "migrations",
        sa.Column("id", Int, primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.Text(), nullable=False, unique=True),
        sa.Column("instance_uuid", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("migration_type", sa.Text(), nullable=False),  # "resize" | "migration"
        sa.Column("source_compute", sa.Text(), nullable=False),
        sa.Column("dest_compute", sa.Text(), nullable=True),
        sa.Column("old_flavor", sa.Text(), nullable=False),  # JSON flavor document
        sa.Column("new_flavor", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("migrations_instance", "migrations", ["instance_uuid"])
    op.create_index("migrations_status", "migrations", ["status"])
    op.create_index("instances_deleted_at", "instances", ["vm_state", "deleted_at"])


def downgrade() -> None:
    op.drop_index("instances_deleted_at", "instances")
    op.drop_table("migrations")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("system_metadata")
