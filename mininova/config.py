"""Configuration: defaults < TOML file < environment (MININOVA_*) < command-line flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mininova import paths


@dataclass
class ServeConfig:
    data_dir: Path = field(default_factory=lambda: paths.default_data_dir("mininova"))
    listen: str = "127.0.0.1:8780"
    # SQLAlchemy-style URL; default: the SQLite file <data_dir>/mininova.sqlite.
    # PostgreSQL: postgresql+asyncpg://user:password@host/dbname
    database_url: str = ""
    public_url: str = ""  # default: http(s)://<listen>
    tls_cert: str = ""  # bring your own certificate chain (PEM); default: the cloud CA's
    tls_key: str = ""
    insecure_http: bool = False  # allow plain HTTP on a non-loopback listen address
    join_token_ttl: int = 86400  # lifetime of the join token printed at start (s)
    # The HTTP server (mininova.api.server_limits): a connection must send its request line
    # and headers within header_timeout s (also the TLS handshake's time); an idle keep-alive
    # connection closes after keepalive_timeout s; at most max_connections at once and
    # max_connections_per_address from one client address (0: no limit) — over them a new
    # connection gets a 503 with Retry-After. Upgraded links (agents, consoles, tunnels) leave
    # both counts once accepted (their own limits bound them); behind a reverse proxy every
    # client shares the proxy's address, so raise max_connections_per_address there.
    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1024
    max_connections_per_address: int = 128
    region: str = "RegionOne"
    token_ttl: int = 3600
    # mininova doctor: expired identity tokens still stored this many s after their expiry
    # are reported (the purge should have removed them by then)
    doctor_token_grace: int = 86400
    # Logins and tokens (Keystone's [security_compliance] lockout_* options; in memory, per
    # process). After lockout_failure_attempts wrong passwords in a row a user is refused for
    # lockout_duration s after the last one (0 attempts: no lockout; 0 s: until an admin sets
    # a new password). Keystone ships the lockout off; 5 here, because a lab's accounts face
    # classmates, and 300 s so a student who mistypes waits minutes, not Keystone's 1800 s.
    # More than login_failures_per_address failed password logins from one socket peer in
    # login_failures_window s: 429 until the window frees (0: no limit).
    lockout_failure_attempts: int = 5
    lockout_duration: int = 300
    login_failures_per_address: int = 20
    login_failures_window: int = 60
    token_purge_interval: float = 600.0  # how often expired tokens are deleted (s; 0: never)
    token_cache_size: int = 10000  # token validations kept in memory (oldest dropped)
    console_token_ttl: int = 600
    console_single_use: bool = False
    console_max_sessions_per_instance: int = 4
    console_max_sessions: int = 64
    # open consoles one project may hold at once (one tenant cannot take all of the above)
    console_max_sessions_per_project: int = 16
    console_keepalive: float = 20.0
    # API abuse limits (Nova/oslo.middleware's max_request_body_size): bytes of a JSON
    # request body (413 above it; image data and migration disks stream and are exempt).
    max_request_body_size: int = 114688
    heartbeat_interval: float = 5.0
    missed_heartbeats_down: int = 3
    build_retries: int = 3
    spawn_timeout: float = 300.0
    action_timeout: float = 180.0
    # Soft delete (Nova's reclaim_instance_interval): > 0 keeps deleted servers SOFT_DELETED,
    # powered off and restorable, for this many seconds before the reaper deletes them.
    reclaim_instance_interval: int = 0
    # shelve: seconds a SHELVED server keeps its host before it is offloaded (0: at once,
    # -1: never automatically); the periodic offload runs every shelved_poll_interval s
    shelved_offload_time: int = 0
    shelved_poll_interval: float = 3600.0
    # resize / cold migration (Nova's options of the same names)
    allow_resize_to_same_host: bool = False
    resize_confirm_window: int = 0  # s a resized server waits before auto-confirm; 0: never
    migration_timeout: float = 1800.0  # how long one disk move may take (s)
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    # Glance's image limits. image_size_cap: the largest image data one upload may bring
    # (bytes; Glance's default, 1 TiB). Per project, as Glance's unified limits (-1: no
    # limit): image_count_total images of any status, image_size_total MiB of image data,
    # image_count_uploading uploads at the same time. Snapshots and shelving count too.
    image_size_cap: int = 1099511627776
    image_count_total: int = 100
    image_size_total: int = 102400
    image_count_uploading: int = 4
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def store_url(self) -> str:
        """Where the state lives: `database_url`, or the SQLite file in the data dir."""
        return self.database_url or str(self.data_dir / "mininova.sqlite")

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0] or "127.0.0.1"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def tls_enabled(self) -> bool:
        """HTTPS unless we listen on loopback only (or plain HTTP was asked for)."""
        if self.tls_cert:
            return True
        if self.public_url.lower().startswith("https://"):
            return True
        return not (paths.is_loopback(self.listen_host) or self.insecure_http)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.listen_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls_enabled else "http"
        return f"{scheme}://{host}:{self.listen_port}"


@dataclass
class AgentConfig:
    controller: str = "http://127.0.0.1:8780"
    token: str = ""
    ca_cert_hash: str = ""  # sha256:<hex> of the controller's CA, printed by serve
    insecure_http: bool = False  # allow plain ws:// to a non-loopback controller
    host: str = ""
    driver: str = "fake"
    data_dir: Path = field(default_factory=lambda: paths.default_data_dir("mininova-agent"))
    instances_dir: str = ""  # guest files; default paths.default_instances_dir(host)
    libvirt_uri: str = "qemu:///system"
    virt_type: str = "auto"
    libvirt_network: str = "default"
    heartbeat_interval: float = 5.0
    sync_interval: float = 5.0
    reconnect_max_backoff: float = 10.0
    destroy_orphans: bool = False
    fake_vcpus: int = 16
    fake_memory_mb: int = 32768
    fake_disk_gb: int = 500
    fake_boot_seconds: float = 0.2
    # the most of a guest's serial console log that console output returns (bytes, its
    # tail; Nova's libvirt driver returns 100 KiB); the file itself is rotated by virtlogd
    console_log_max_bytes: int = 102400
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)


def _coerce(current: Any, raw: Any) -> Any:
    if isinstance(current, bool):
        if isinstance(raw, str):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return bool(raw)
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, Path):
        return Path(str(raw)).expanduser()
    return raw


def load(cls: type, config_file: Path | None, env_prefix: str, overrides: dict[str, Any]) -> Any:
    """Build a config dataclass from a TOML file, then env vars, then explicit overrides."""
    config = cls()
    names = {f.name for f in fields(cls) if f.name != "extra"}
    if config_file is not None:
        with open(config_file, "rb") as fh:
            data = tomllib.load(fh)
        for key, value in data.items():
            key = key.replace("-", "_")
            if key in names:
                setattr(config, key, _coerce(getattr(config, key), value))
            else:
                config.extra[key] = value
    for name in names:
        env = os.environ.get(f"{env_prefix}{name.upper()}")
        if env is not None:
            setattr(config, name, _coerce(getattr(config, name), env))
    for key, value in overrides.items():
        if value is not None and key in names:
            setattr(config, key, _coerce(getattr(config, key), value))
    return config
