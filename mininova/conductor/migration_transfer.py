"""A root disk's trip between two hosts through the controller (hosts may be behind NAT).

The source agent streams the disk with `PUT <base_url>/migration-disks/<migration uuid>`
under a capability for exactly that path; the controller's handler
(`mininova/api/migration_disk.py`) writes it to `<data_dir>/migrations/<uuid>.qcow2`, chunk by
chunk, hashing it (sha256) as it goes, and records the digest next to it. The conductor checks
that digest against the one the source computed, then grants the destination a `GET` of the
same path and hands it the digest, which the destination verifies before it boots from the
file. The controller's copy is deleted as soon as the destination answered (or the move
failed). Nothing is ever held in memory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mininova.config import ServeConfig
from mininova.trust.capabilities import Capabilities


def disk_path(migration_uuid: str) -> str:
    """The controller's HTTP path of one migration's disk."""
    return f"/migration-disks/{migration_uuid}"


def transfer_dir(config: ServeConfig) -> Path:
    return Path(config.data_dir) / "migrations"


def stored_file(config: ServeConfig, migration_uuid: str) -> Path:
    """Where the controller keeps the disk in transit (its `.sha256` is next to it)."""
    return transfer_dir(config) / f"{migration_uuid}.qcow2"


def remove(config: ServeConfig, migration_uuid: str) -> None:
    base = stored_file(config, migration_uuid)
    for path in (base, base.with_suffix(".sha256"), base.with_suffix(".part")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass
class Disk:
    """A disk that arrived at the controller, checked."""

    config: ServeConfig
    migration_uuid: str
    sha256: str
    size: int
    grants: list[str]

    def grant_download(self, capabilities: Capabilities, dest: str, ttl: float) -> dict[str, Any]:
        """The `disk` param of `finish_resize`: where the destination fetches it, and its digest."""
        path = disk_path(self.migration_uuid)
        token = capabilities.grant(dest, "GET", path, ttl)
        self.grants.append(token)
        return {
            "url": self.config.base_url + path,
            "capability": token,
            "sha256": self.sha256,
            "size": self.size,
        }

    def close(self, capabilities: Capabilities) -> None:
        for token in self.grants:
            capabilities.revoke(token)
        remove(self.config, self.migration_uuid)


@dataclass
class Upload:
    """The source's upload grant for one migration."""

    config: ServeConfig
    capabilities: Capabilities
    migration_uuid: str
    token: str

    def source_params(self) -> dict[str, Any]:
        return {
            "upload_url": self.config.base_url + disk_path(self.migration_uuid),
            "capability": self.token,
        }

    def finish(self, result: Any) -> Disk:
        """The source answered: the stored file must match the digest it reports."""
        self.capabilities.revoke(self.token)
        stored = stored_file(self.config, self.migration_uuid)
        reported = result.get("sha256") if isinstance(result, dict) else None
        try:
            received = stored.with_suffix(".sha256").read_text().strip()
        except FileNotFoundError:
            raise ValueError("the source's disk never reached the controller") from None
        if not isinstance(reported, str) or reported != received:
            self.close()
            raise ValueError(
                f"disk checksum mismatch: the source sent {reported}, the controller got {received}"
            )
        return Disk(self.config, self.migration_uuid, received, stored.stat().st_size, [])

    def close(self) -> None:
        self.capabilities.revoke(self.token)
        remove(self.config, self.migration_uuid)


def start(
    config: ServeConfig, capabilities: Capabilities, migration_uuid: str, source: str, ttl: float
) -> Upload:
    """Let `source` upload this migration's disk (one PUT of exactly its path)."""
    transfer_dir(config).mkdir(mode=0o700, parents=True, exist_ok=True)
    remove(config, migration_uuid)
    token = capabilities.grant(source, "PUT", disk_path(migration_uuid), ttl)
    return Upload(config, capabilities, migration_uuid, token)
