"""Numbered schema migrations. Append new ones; never edit an applied one."""

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, domain_id TEXT NOT NULL DEFAULT 'default',
    description TEXT NOT NULL DEFAULT '', enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL);
CREATE TABLE users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, domain_id TEXT NOT NULL DEFAULT 'default',
    password_hash TEXT NOT NULL, default_project_id TEXT, email TEXT,
    enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);
CREATE TABLE roles (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE role_assignments (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id, role_id));
CREATE TABLE tokens (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, project_id TEXT,
    issued_at TEXT NOT NULL, expires_at TEXT NOT NULL, audit_id TEXT NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE flavors (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, ram INTEGER NOT NULL, vcpus INTEGER NOT NULL,
    disk INTEGER NOT NULL, ephemeral INTEGER NOT NULL DEFAULT 0, swap INTEGER NOT NULL DEFAULT 0,
    rxtx_factor REAL NOT NULL DEFAULT 1.0, is_public INTEGER NOT NULL DEFAULT 1,
    disabled INTEGER NOT NULL DEFAULT 0, description TEXT, created_at TEXT NOT NULL);
CREATE TABLE flavor_access (
    flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL, PRIMARY KEY (flavor_id, project_id));
CREATE TABLE flavor_extra_specs (
    flavor_id TEXT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (flavor_id, key));

CREATE TABLE images (
    id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, disk_format TEXT,
    container_format TEXT, size INTEGER, virtual_size INTEGER, checksum TEXT,
    os_hash_algo TEXT, os_hash_value TEXT, owner TEXT, visibility TEXT NOT NULL,
    min_disk INTEGER NOT NULL DEFAULT 0, min_ram INTEGER NOT NULL DEFAULT 0,
    protected INTEGER NOT NULL DEFAULT 0, properties TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);

CREATE TABLE keypairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, name TEXT NOT NULL,
    public_key TEXT NOT NULL, fingerprint TEXT NOT NULL, type TEXT NOT NULL DEFAULT 'ssh',
    created_at TEXT NOT NULL, UNIQUE (user_id, name));

CREATE TABLE compute_nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL UNIQUE,
    hypervisor_hostname TEXT NOT NULL, hypervisor_type TEXT NOT NULL DEFAULT 'fake',
    hypervisor_version INTEGER NOT NULL DEFAULT 0, cpu_info TEXT NOT NULL DEFAULT '{}',
    host_ip TEXT NOT NULL DEFAULT '127.0.0.1', vcpus INTEGER NOT NULL DEFAULT 0,
    memory_mb INTEGER NOT NULL DEFAULT 0, local_gb INTEGER NOT NULL DEFAULT 0,
    cpu_allocation_ratio REAL NOT NULL DEFAULT 4.0, ram_allocation_ratio REAL NOT NULL DEFAULT 1.5,
    disk_allocation_ratio REAL NOT NULL DEFAULT 1.0,
    disabled INTEGER NOT NULL DEFAULT 0, disabled_reason TEXT, zone TEXT NOT NULL DEFAULT 'nova',
    driver TEXT NOT NULL DEFAULT '', connected INTEGER NOT NULL DEFAULT 0,
    last_heartbeat TEXT, created_at TEXT NOT NULL, updated_at TEXT);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    hostname TEXT NOT NULL, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
    image_ref TEXT NOT NULL, flavor_id TEXT NOT NULL, flavor TEXT NOT NULL,
    key_name TEXT, key_data TEXT, user_data TEXT, metadata TEXT NOT NULL DEFAULT '{}',
    vm_state TEXT NOT NULL, task_state TEXT, power_state INTEGER NOT NULL DEFAULT 0,
    host TEXT, availability_zone TEXT, access_ip_v4 TEXT, access_ip_v6 TEXT,
    addresses TEXT NOT NULL DEFAULT '[]', mac_address TEXT NOT NULL,
    config_drive TEXT NOT NULL DEFAULT '', reservation_id TEXT NOT NULL,
    launch_index INTEGER NOT NULL DEFAULT 0, locked INTEGER NOT NULL DEFAULT 0,
    locked_by TEXT, locked_reason TEXT, fault TEXT, scheduler_hints TEXT NOT NULL DEFAULT '{}',
    description TEXT, launched_at TEXT, terminated_at TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX instances_project ON instances (project_id, deleted);
CREATE INDEX instances_host ON instances (host, deleted);

CREATE TABLE instance_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, instance_uuid TEXT NOT NULL, action TEXT NOT NULL,
    request_id TEXT NOT NULL, user_id TEXT NOT NULL, project_id TEXT NOT NULL,
    start_time TEXT NOT NULL, finish_time TEXT, message TEXT);
CREATE INDEX instance_actions_uuid ON instance_actions (instance_uuid);
CREATE TABLE instance_action_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id INTEGER NOT NULL REFERENCES instance_actions(id) ON DELETE CASCADE,
    event TEXT NOT NULL, start_time TEXT NOT NULL, finish_time TEXT, result TEXT,
    host TEXT, traceback TEXT);

CREATE TABLE allocations (
    instance_uuid TEXT PRIMARY KEY, host TEXT NOT NULL, vcpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL, disk_gb INTEGER NOT NULL);

CREATE TABLE console_tokens (
    token_hash TEXT PRIMARY KEY, instance_uuid TEXT NOT NULL, console_type TEXT NOT NULL,
    expires_at TEXT NOT NULL, single_use INTEGER NOT NULL DEFAULT 0,
    used INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE INDEX console_tokens_instance ON console_tokens (instance_uuid);

CREATE TABLE quotas (
    project_id TEXT NOT NULL, resource TEXT NOT NULL, hard_limit INTEGER NOT NULL,
    PRIMARY KEY (project_id, resource));
""",
    ),
    (
        2,
        """
CREATE TABLE server_groups (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, project_id TEXT NOT NULL, user_id TEXT NOT NULL,
    policy TEXT NOT NULL, rules TEXT NOT NULL DEFAULT '{}',
    metadata TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL);
CREATE INDEX server_groups_project ON server_groups (project_id);
CREATE TABLE server_group_members (
    group_id TEXT NOT NULL REFERENCES server_groups(id) ON DELETE CASCADE,
    instance_uuid TEXT NOT NULL UNIQUE, PRIMARY KEY (group_id, instance_uuid));
""",
    ),
    (
        3,
        """
CREATE TABLE join_tokens (
    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL, expires_at TEXT, uses_left INTEGER, used INTEGER NOT NULL DEFAULT 0,
    revoked_at TEXT);
CREATE TABLE host_credentials (
    host TEXT PRIMARY KEY, credential_hash TEXT NOT NULL UNIQUE, join_token_id TEXT,
    created_at TEXT NOT NULL, last_seen_at TEXT, revoked_at TEXT);
DELETE FROM settings WHERE key IN ('admin_password', 'agent_join_token', 'agent_join_token_hash');
DELETE FROM tokens WHERE user_id IN (SELECT id FROM users WHERE name = 'mininova-service');
DELETE FROM users WHERE name = 'mininova-service';
""",
    ),
]
