"""Security groups, their rules, server membership, and floating IPs.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _flag(name: str, default: int = 0) -> sa.Column:
    return sa.Column(name, Int, nullable=False, server_default=sa.text(str(default)))


def _text(name: str, nullable: bool = True, default: str | None = None) -> sa.Column:
    server_default = sa.text(default) if default is not None else None
    return sa.Column(name, sa.Text(), nullable=nullable, server_default=server_default)


def upgrade() -> None:
    op.create_table(
        "security_groups",
        sa.Column("id", sa.Text(), primary_key=True),
        _text("project_id", False),
        _text("name", False),
        _text("description", False, "''"),
        _flag("stateful", 1),
        _flag("is_default", 0),
        sa.Column("revision_number", Int, nullable=False, server_default=sa.text("0")),
        _text("created_at", False),
        _text("updated_at", False),
    )
    op.create_index("security_groups_project", "security_groups", ["project_id"])
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "security_group_id",
            sa.Text(),
            sa.ForeignKey("security_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _text("project_id", False),
        _text("direction", False),
        _text("ethertype", False),
        _text("protocol"),
        sa.Column("port_range_min", Int),
        sa.Column("port_range_max", Int),
        _text("remote_ip_prefix"),
        _text("remote_group_id"),
        _text("description", False, "''"),
        _text("created_at", False),
        _text("updated_at", False),
    )
    op.create_index("security_group_rules_group", "security_group_rules", ["security_group_id"])
    op.create_table(
        "instance_security_groups",
        _text("instance_uuid", False),
        sa.Column(
            "security_group_id",
            sa.Text(),
            sa.ForeignKey("security_groups.id"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("instance_uuid", "security_group_id"),
    )
    op.create_index(
        "instance_security_groups_group", "instance_security_groups", ["security_group_id"]
    )
    op.create_table(
        "floating_ips",
        sa.Column("id", sa.Text(), primary_key=True),
        _text("project_id", False),
        sa.Column(
            "floating_network_id",
            sa.Text(),
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _text("subnet_id", False),
        _text("floating_ip_address", False),
        _text("port_id"),
        _text("instance_uuid"),
        _text("fixed_ip_address"),
        _text("description", False, "''"),
        sa.Column("revision_number", Int, nullable=False, server_default=sa.text("0")),
        _text("created_at", False),
        _text("updated_at", False),
        sa.UniqueConstraint(
            "floating_network_id", "floating_ip_address", name="floating_ips_address"
        ),
    )
    op.create_index("floating_ips_project", "floating_ips", ["project_id"])
    op.create_index("floating_ips_instance", "floating_ips", ["instance_uuid"])


def downgrade() -> None:
    op.drop_index("floating_ips_instance", "floating_ips")
    op.drop_index("floating_ips_project", "floating_ips")
    op.drop_table("floating_ips")
    op.drop_index("instance_security_groups_group", "instance_security_groups")
    op.drop_table("instance_security_groups")
    op.drop_index("security_group_rules_group", "security_group_rules")
    op.drop_table("security_group_rules")
    op.drop_index("security_groups_project", "security_groups")
    op.drop_table("security_groups")
