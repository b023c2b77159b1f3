"""The database schema as SQLAlchemy metadata: the one description both backends share.

Column types stay deliberately plain (TEXT, INTEGER, REAL): JSON documents and timestamps are
TEXT, flags are 0/1 INTEGERs. Integers are BIGINT on PostgreSQL (image sizes pass 2**31) and
INTEGER on SQLite, where only `INTEGER PRIMARY KEY` is an alias for the rowid. Changing this
file needs an Alembic revision in `mininova/store/alembic/versions/`; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

Int = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _flag(name: str, default: int = 0) -> Column:
    return Column(name, Int, nullable=False, server_default=text(str(default)))


def _serial() -> Column:
    return Column("id", Int, primary_key=True, autoincrement=True)


projects = Table(
    "projects",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("domain_id", Text, nullable=False, server_default=text("'default'")),
    Column("description", Text, nullable=False, server_default=text("''")),
    _flag("enabled", 1),
    Column("created_at", Text, nullable=False),
    # Keystone's project tags: a JSON list of strings.
    Column("tags", Text, nullable=False, server_default=text("'[]'")),
)

users = Table(
    "users",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("domain_id", Text, nullable=False, server_default=text("'default'")),
    Column("password_hash", Text, nullable=False),
    Column("default_project_id", Text),
    Column("email", Text),
    _flag("enabled", 1),
    Column("created_at", Text, nullable=False),
)

roles = Table(
    "roles",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
)

role_assignments = Table(
    "role_assignments",
    metadata,
    Column("user_id", Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Text, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("role_id", Text, ForeignKey("roles.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("user_id", "project_id", "role_id"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("user_id", Text, nullable=False),
    Column("project_id", Text),
    Column("issued_at", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    Column("audit_id", Text, nullable=False),
    # The token's auth methods (a JSON list) and, for a rescoped token, the audit id of the
    # chain's first token (Keystone's second audit id).
    Column("methods", Text, nullable=False, server_default=text("'[\"password\"]'")),
    Column("parent_audit_id", Text),
)

settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

flavors = Table(
    "flavors",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("ram", Int, nullable=False),
    Column("vcpus", Int, nullable=False),
    Column("disk", Int, nullable=False),
    Column("ephemeral", Int, nullable=False, server_default=text("0")),
    Column("swap", Int, nullable=False, server_default=text("0")),
    Column("rxtx_factor", Float, nullable=False, server_default=text("1.0")),
    _flag("is_public", 1),
    _flag("disabled", 0),
    Column("description", Text),
    Column("created_at", Text, nullable=False),
)

flavor_access = Table(
    "flavor_access",
    metadata,
    Column("flavor_id", Text, ForeignKey("flavors.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Text, nullable=False),
    PrimaryKeyConstraint("flavor_id", "project_id"),
)

flavor_extra_specs = Table(
    "flavor_extra_specs",
    metadata,
    Column("flavor_id", Text, ForeignKey("flavors.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("flavor_id", "key"),
)

images = Table(
    "images",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("status", Text, nullable=False),
    Column("disk_format", Text),
    Column("container_format", Text),
    Column("size", Int),
    Column("virtual_size", Int),
    Column("checksum", Text),
    Column("os_hash_algo", Text),
    Column("os_hash_value", Text),
    Column("owner", Text),
    Column("visibility", Text, nullable=False),
    Column("min_disk", Int, nullable=False, server_default=text("0")),
    Column("min_ram", Int, nullable=False, server_default=text("0")),
    _flag("protected", 0),
    Column("properties", Text, nullable=False, server_default=text("'{}'")),
    Column("tags", Text, nullable=False, server_default=text("'[]'")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

keypairs = Table(
    "keypairs",
    metadata,
    _serial(),
    Column("user_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("type", Text, nullable=False, server_default=text("'ssh'")),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("user_id", "name"),
    sqlite_autoincrement=True,
)

compute_nodes = Table(
    "compute_nodes",
    metadata,
    _serial(),
    Column("host", Text, nullable=False, unique=True),
    Column("hypervisor_hostname", Text, nullable=False),
    Column("hypervisor_type", Text, nullable=False, server_default=text("'fake'")),
    Column("hypervisor_version", Int, nullable=False, server_default=text("0")),
    Column("cpu_info", Text, nullable=False, server_default=text("'{}'")),
    Column("host_ip", Text, nullable=False, server_default=text("'127.0.0.1'")),
    Column("vcpus", Int, nullable=False, server_default=text("0")),
    Column("memory_mb", Int, nullable=False, server_default=text("0")),
    Column("local_gb", Int, nullable=False, server_default=text("0")),
    Column("cpu_allocation_ratio", Float, nullable=False, server_default=text("4.0")),
    Column("ram_allocation_ratio", Float, nullable=False, server_default=text("1.5")),
    Column("disk_allocation_ratio", Float, nullable=False, server_default=text("1.0")),
    _flag("disabled", 0),
    Column("disabled_reason", Text),
    Column("zone", Text, nullable=False, server_default=text("'nova'")),
    Column("driver", Text, nullable=False, server_default=text("''")),
    _flag("connected", 0),
    Column("last_heartbeat", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text),
    _flag("forced_down", 0),
    sqlite_autoincrement=True,
)

instances = Table(
    "instances",
    metadata,
    _serial(),
    Column("uuid", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("hostname", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("image_ref", Text, nullable=False),
    Column("flavor_id", Text, nullable=False),
    Column("flavor", Text, nullable=False),
    Column("key_name", Text),
    Column("key_data", Text),
    Column("user_data", Text),
    Column("metadata", Text, nullable=False, server_default=text("'{}'")),
    Column("vm_state", Text, nullable=False),
    Column("task_state", Text),
    Column("power_state", Int, nullable=False, server_default=text("0")),
    Column("host", Text),
    Column("availability_zone", Text),
    Column("access_ip_v4", Text),
    Column("access_ip_v6", Text),
    Column("addresses", Text, nullable=False, server_default=text("'[]'")),
    Column("mac_address", Text, nullable=False),
    Column("config_drive", Text, nullable=False, server_default=text("''")),
    Column("reservation_id", Text, nullable=False),
    Column("launch_index", Int, nullable=False, server_default=text("0")),
    _flag("locked", 0),
    Column("locked_by", Text),
    Column("locked_reason", Text),
    Column("fault", Text),
    Column("scheduler_hints", Text, nullable=False, server_default=text("'{}'")),
    Column("description", Text),
    Column("launched_at", Text),
    Column("terminated_at", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    _flag("deleted", 0),
    # The flavor's resources, copied from the `flavor` document for aggregate quota usage.
    Column("vcpus", Int, nullable=False, server_default=text("0")),
    Column("memory_mb", Int, nullable=False, server_default=text("0")),
    Column("root_gb", Int, nullable=False, server_default=text("0")),
    # Nova's system metadata (JSON object): password, shelved image, resize flavors.
    Column("system_metadata", Text, nullable=False, server_default=text("'{}'")),
    Column("deleted_at", Text),  # when a server was (soft) deleted
    Index("instances_project", "project_id", "deleted"),
    # Covers the quota's usage aggregate: counted from the index alone.
    Index("instances_usage", "project_id", "deleted", "vcpus", "memory_mb"),
    Index("instances_host", "host", "deleted"),
    Index("instances_deleted_at", "vm_state", "deleted_at"),
    sqlite_autoincrement=True,
)

instance_actions = Table(
    "instance_actions",
    metadata,
    _serial(),
    Column("instance_uuid", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("start_time", Text, nullable=False),
    Column("finish_time", Text),
    Column("message", Text),
    Index("instance_actions_uuid", "instance_uuid"),
    sqlite_autoincrement=True,
)

instance_action_events = Table(
    "instance_action_events",
    metadata,
    _serial(),
    Column("action_id", Int, ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False),
    Column("event", Text, nullable=False),
    Column("start_time", Text, nullable=False),
    Column("finish_time", Text),
    Column("result", Text),
    Column("host", Text),
    Column("traceback", Text),
    sqlite_autoincrement=True,
)

migrations = Table(
    "migrations",
    metadata,
    _serial(),
    Column("uuid", Text, nullable=False, unique=True),
    Column("instance_uuid", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("migration_type", Text, nullable=False),  # "resize" | "migration"
    Column("source_compute", Text, nullable=False),
    Column("dest_compute", Text),
    Column("old_flavor", Text, nullable=False),  # JSON flavor documents
    Column("new_flavor", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("migrations_instance", "instance_uuid"),
    Index("migrations_status", "status"),
    sqlite_autoincrement=True,
)

allocations = Table(
    "allocations",
    metadata,
    Column("instance_uuid", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("vcpus", Int, nullable=False),
    Column("memory_mb", Int, nullable=False),
    Column("disk_gb", Int, nullable=False),
    Index("allocations_host", "host"),
)

console_tokens = Table(
    "console_tokens",
    metadata,
    Column("token_hash", Text, primary_key=True),
    Column("instance_uuid", Text, nullable=False),
    Column("console_type", Text, nullable=False),
    Column("expires_at", Text, nullable=False),
    _flag("single_use", 0),
    _flag("used", 0),
    Column("created_at", Text, nullable=False),
    Index("console_tokens_instance", "instance_uuid"),
)

quotas = Table(
    "quotas",
    metadata,
    Column("project_id", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("hard_limit", Int, nullable=False),
    PrimaryKeyConstraint("project_id", "resource"),
)

server_groups = Table(
    "server_groups",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("rules", Text, nullable=False, server_default=text("'{}'")),
    Column("metadata", Text, nullable=False, server_default=text("'{}'")),
    Column("created_at", Text, nullable=False),
    Index("server_groups_project", "project_id"),
)

server_group_members = Table(
    "server_group_members",
    metadata,
    Column("group_id", Text, ForeignKey("server_groups.id", ondelete="CASCADE"), nullable=False),
    Column("instance_uuid", Text, nullable=False, unique=True),
    PrimaryKeyConstraint("group_id", "instance_uuid"),
)

# Networks and subnets an admin creates through the network API (external networks). The
# `private` network and its subnet are not rows: they describe the hosts' libvirt network, and
# only their ids are kept (in `settings`, written by migration 0004).
networks = Table(
    "networks",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    _flag("admin_state_up", 1),
    _flag("shared"),
    _flag("external"),
    Column("mtu", Int, nullable=False, server_default=text("1500")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
)

subnets = Table(
    "subnets",
    metadata,
    Column("id", Text, primary_key=True),
    Column("network_id", Text, ForeignKey("networks.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("ip_version", Int, nullable=False),
    Column("cidr", Text, nullable=False),
    Column("gateway_ip", Text),
    _flag("enable_dhcp", 1),
    # JSON lists: [{"start": ..., "end": ...}], ["8.8.8.8"], [{"destination":, "nexthop":}]
    Column("allocation_pools", Text, nullable=False, server_default=text("'[]'")),
    Column("dns_nameservers", Text, nullable=False, server_default=text("'[]'")),
    Column("host_routes", Text, nullable=False, server_default=text("'[]'")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("subnets_network", "network_id"),
)

# Security groups (Neutron's model): a project's groups, their rules, and which servers are
# in which group. A project's `default` group is made on first use (store/security_groups.py).
security_groups = Table(
    "security_groups",
    metadata,
    Column("id", Text, primary_key=True),
    Column("project_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    _flag("stateful", 1),
    _flag("is_default", 0),
    Column("revision_number", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("security_groups_project", "project_id"),
)

security_group_rules = Table(
    "security_group_rules",
    metadata,
    Column("id", Text, primary_key=True),
    Column(
        "security_group_id",
        Text,
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("project_id", Text, nullable=False),
    Column("direction", Text, nullable=False),  # ingress | egress
    Column("ethertype", Text, nullable=False),  # IPv4 | IPv6
    Column("protocol", Text),  # tcp, udp, icmp, a number, or NULL (any)
    Column("port_range_min", Int),
    Column("port_range_max", Int),
    Column("remote_ip_prefix", Text),
    Column("remote_group_id", Text),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Index("security_group_rules_group", "security_group_id"),
)

instance_security_groups = Table(
    "instance_security_groups",
    metadata,
    Column("instance_uuid", Text, nullable=False),
    Column("security_group_id", Text, ForeignKey("security_groups.id"), nullable=False),
    PrimaryKeyConstraint("instance_uuid", "security_group_id"),
    Index("instance_security_groups_group", "security_group_id"),
)

# Floating IPs allocated from an external network's subnet; `port_id`/`instance_uuid`/
# `fixed_ip_address` are set while one is associated with a server's port.
floating_ips = Table(
    "floating_ips",
    metadata,
    Column("id", Text, primary_key=True),
    Column("project_id", Text, nullable=False),
    Column(
        "floating_network_id", Text, ForeignKey("networks.id", ondelete="CASCADE"), nullable=False
    ),
    Column("subnet_id", Text, nullable=False),
    Column("floating_ip_address", Text, nullable=False),
    Column("port_id", Text),
    Column("instance_uuid", Text),
    Column("fixed_ip_address", Text),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("revision_number", Int, nullable=False, server_default=text("0")),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    UniqueConstraint("floating_network_id", "floating_ip_address", name="floating_ips_address"),
    Index("floating_ips_project", "project_id"),
    Index("floating_ips_instance", "instance_uuid"),
)

# The guests each agent last reported (at hello and with every heartbeat): what
# `mininova doctor` compares with the instances, from another process. One row per host;
# `guests` is a JSON list of {"uuid", "power_state"}.
host_guests = Table(
    "host_guests",
    metadata,
    Column("host", Text, primary_key=True),
    Column("guests", Text, nullable=False, server_default=text("'[]'")),
    Column("reported_at", Text, nullable=False),
)

join_tokens = Table(
    "join_tokens",
    metadata,
    Column("id", Text, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("created_at", Text, nullable=False),
    Column("expires_at", Text),
    Column("uses_left", Int),
    Column("used", Int, nullable=False, server_default=text("0")),
    Column("revoked_at", Text),
)

host_credentials = Table(
    "host_credentials",
    metadata,
    Column("host", Text, primary_key=True),
    Column("credential_hash", Text, nullable=False, unique=True),
    Column("join_token_id", Text),
    Column("created_at", Text, nullable=False),
    Column("last_seen_at", Text),
    Column("revoked_at", Text),
)

# SQLite's own bookkeeping of AUTOINCREMENT counters; not part of the migrated schema.
sqlite_sequence = Table(
    "sqlite_sequence",
    MetaData(),
    Column("name", Text, primary_key=True),
    Column("seq", Int),
)
