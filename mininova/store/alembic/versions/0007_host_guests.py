"""The guests agents last reported: one row per host, for `mininova doctor`.

Revision ID: 0007
Revises: 0006

`host_guests.guests` is the JSON list of guests ({"uuid", "power_state"}) a host's agent sent
at its last hello or heartbeat, `reported_at` when the controller received it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_guests",
        sa.Column("host", sa.Text(), primary_key=True),
        sa.Column("guests", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("reported_at", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("host_guests")
