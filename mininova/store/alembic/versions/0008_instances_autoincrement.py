"""SQLite: give `instances` its AUTOINCREMENT back.

Revision ID: 0008
Revises: 0007

Revision 0006's batch copy of `instances` rebuilt the table without AUTOINCREMENT, so on
SQLite the random first id that bootstrap seeds was ignored (every cloud named its first guest
`instance-00000001`, and two clouds on one libvirtd collided) and the id of a purged row could
be handed out again. The copy here keeps every row and its id; SQLite's counter then continues
after the highest id. PostgreSQL's serial column was never affected: nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "instances", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
