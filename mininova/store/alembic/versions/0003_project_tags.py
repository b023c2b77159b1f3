"""Projects get Keystone's tags; tokens remember their auth methods and their audit chain.

`projects.tags` is a JSON list (existing projects: none). `tokens.methods` is a JSON list
(existing tokens came from the password method) and `tokens.parent_audit_id` is the audit id
of the token a rescoped token was made from (NULL for the others).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN with a constant default: no table copy on SQLite, none on PostgreSQL.
    op.add_column(
        "projects", sa.Column("tags", sa.Text(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column(
        "tokens",
        sa.Column("methods", sa.Text(), nullable=False, server_default=sa.text("'[\"password\"]'")),
    )
    op.add_column("tokens", sa.Column("parent_audit_id", sa.Text(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE … DROP COLUMN on both backends (SQLite 3.35+). A batch copy would drop and
    # re-create `projects`, and with foreign keys on that deletes every role assignment.
    for table, column in (
        ("tokens", "parent_audit_id"),
        ("tokens", "methods"),
        ("projects", "tags"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
