"""The network API: tables for admin-made (external) networks and subnets; the ids of `private`.

The `private` network and its subnet describe the hosts' libvirt network and are not rows; their
ids are written once here into `settings` (`network.private.id`, `network.private.subnet_id`).
The network keeps the id os-networks has always shown (uuid5 of "mininova-private"), so an
upgraded cloud keeps it; the subnet gets a random one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PRIVATE_KEYS = ("network.private.id", "network.private.subnet_id")


def _flag(name: str, default: int = 0) -> sa.Column:
    return sa.Column(name, Int, nullable=False, server_default=sa.text(str(default)))


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        _flag("admin_state_up", 1),
        _flag("shared"),
        _flag("external"),
        sa.Column("mtu", Int, nullable=False, server_default=sa.text("1500")),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
    )
    op.create_table(
        "subnets",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "network_id",
            sa.Text(),
            sa.ForeignKey("networks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("project_id", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("ip_version", Int, nullable=False),
        sa.Column("cidr", sa.Text(), nullable=False),
        sa.Column("gateway_ip", sa.Text()),
        _flag("enable_dhcp", 1),
        sa.Column("allocation_pools", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("dns_nameservers", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("host_routes", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Text(), nullable=False),
    )
    op.create_index("subnets_network", "subnets", ["network_id"])
    settings = sa.table("settings", sa.column("key", sa.Text()), sa.column("value", sa.Text()))
    op.bulk_insert(
        settings,
        [
            {
                "key": PRIVATE_KEYS[0],
                "value": str(uuid.uuid5(uuid.NAMESPACE_DNS, "mininova-private")),
            },
            {"key": PRIVATE_KEYS[1], "value": str(uuid.uuid4())},
        ],
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM settings WHERE key IN ('network.private.id', 'network.private.subnet_id')"
    )
    op.drop_index("subnets_network", "subnets")
    op.drop_table("subnets")
    op.drop_table("networks")
