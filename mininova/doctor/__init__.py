"""`mininova doctor`: a read-only consistency checker over the store and the data dir.

`check(store, config)` compares instances with allocations, hosts, the guests agents last
reported (`host_guests`), image records with the files under `<data_dir>/images`, identity and
console tokens, in-flight migrations and task states with their timeouts, and runs SQLite's
integrity check. It returns one `Problem` per inconsistency and never writes, so it may run
beside a serving controller. Snapshots taken while work is under way are allowed for: work
inside its timeout, uploads in `saving` and reports older than the instance are not problems.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mininova import instance_states as st
from mininova.image.store_ops import images_dir
from mininova.store import doctor_queries as q
from mininova.store import guest_reports, migrate
from mininova.timeutil import iso, now_utc, parse_iso

if TYPE_CHECKING:
    from mininova.config import ServeConfig
    from mininova.store import Store

# Migration rows still moving a server (the rest are settled: confirmed, reverted, error).
MIGRATION_IN_FLIGHT = frozenset(
    {"pre-migrating", "migrating", "post-migrating", "finished", "confirming", "reverting"}
)
# vm_states whose instance holds no allocation even with a host set (a failed build keeps
# the host it failed on; an offloaded shelved server has none).
NO_CLAIM_STATES = frozenset({st.ERROR, st.BUILDING, st.SHELVED_OFFLOADED, st.DELETED})
# Build task states run under spawn_timeout; resize/migration ones under migration_timeout.
BUILD_TASKS = frozenset({st.SCHEDULING, st.SPAWNING})
STUCK_MARGIN = 60.0  # s beyond a task's own timeout before it counts as stuck
PART_SUFFIX = ".part"  # `.<image id>.<random>.part`: an upload in progress (image/store_ops)


@dataclass(frozen=True)
class Problem:
    """One inconsistency: a `kind` (stable, for tools), the ids involved, what is wrong."""

    kind: str
    ids: dict[str, str] = field(default_factory=dict)
    message: str = ""

    def line(self) -> str:
        ids = " ".join(f"{k}={v}" for k, v in self.ids.items())
        return f"{self.kind} {ids}: {self.message}" if ids else f"{self.kind}: {self.message}"

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.kind, tuple(sorted(self.ids.items()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


async def check(
    store: Store, config: ServeConfig, *, checksums: bool = True, now: datetime | None = None
) -> list[Problem]:
    """Every inconsistency found now (empty: clean). `checksums=False` skips hashing images.

    The tables are read one statement at a time beside a serving controller, so a problem
    counts only when a second pass finds it again (a claim made between two reads is not)."""
    first = await _check_once(store, config, checksums, now)
    if not first:
        return []
    seen = {p.key for p in first}
    return [p for p in await _check_once(store, config, checksums, now) if p.key in seen]


async def _check_once(
    store: Store, config: ServeConfig, checksums: bool, now: datetime | None
) -> list[Problem]:
    now = now or now_utc()
    version = await store.schema_version()
    if version != migrate.HEAD:
        return [
            Problem(
                "schema_version",
                {"revision": str(version)},
                f"database at revision {version}, this mininova's is {migrate.HEAD}:"
                " start `mininova serve` once to migrate it",
            )
        ]
    instances = await q.instances_all(store)
    nodes = {n["host"]: n for n in await q.nodes(store)}
    migrations = await q.migrations_all(store)
    problems: list[Problem] = []
    problems += _integrity(await q.integrity_check(store))
    problems += _allocations(instances, nodes, migrations, await q.allocations_all(store))
    problems += _hosts(instances, nodes)
    problems += _guests(
        instances, nodes, migrations, await guest_reports.all_reports(store), config
    )
    problems += _migrations(instances, migrations)
    problems += _stuck(instances, config, now)
    problems += await _tokens(store, instances, config, now)
    problems += await _images(await q.images_all(store), images_dir(config), checksums)
    return problems


def _integrity(lines: list[str]) -> list[Problem]:
    if not lines or lines == ["ok"]:
        return []
    return [Problem("database_integrity", {}, line) for line in lines]


def _live(instances: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["uuid"]: i for i in instances if not i["deleted"]}


def _moving(migrations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """In-flight migrations by their own uuid (a resize's source claim is held under it)."""
    return {m["uuid"]: m for m in migrations if m["status"] in MIGRATION_IN_FLIGHT}


def _allocations(
    instances: list[dict[str, Any]],
    nodes: dict[str, dict[str, Any]],
    migrations: list[dict[str, Any]],
    claims: list[dict[str, Any]],
) -> list[Problem]:
    live, moving = _live(instances), _moving(migrations)
    moving_instances = {m["instance_uuid"] for m in moving.values()}
    out: list[Problem] = []
    claimed: set[str] = set()
    for claim in claims:
        consumer, host = claim["instance_uuid"], claim["host"]
        claimed.add(consumer)
        ids = {"consumer": consumer, "host": host}
        if host not in nodes:
            out.append(Problem("allocation_unknown_host", ids, f"claim on unknown host {host}"))
        if consumer in moving:
            continue
        inst = live.get(consumer)
        if inst is None:
            out.append(
                Problem("allocation_orphan", ids, "allocation without a live instance or migration")
            )
        elif inst["host"] != host and consumer not in moving_instances:
            out.append(
                Problem(
                    "allocation_host_mismatch",
                    ids,
                    f"the instance is on {inst['host'] or 'no host'}, its claim on {host}",
                )
            )
    for uuid, inst in live.items():
        if inst["host"] and inst["vm_state"] not in NO_CLAIM_STATES and uuid not in claimed:
            if inst["task_state"] in BUILD_TASKS:
                continue  # between a failed spawn's release and the next host's claim
            out.append(
                Problem(
                    "instance_without_allocation",
                    {"instance": uuid, "host": inst["host"]},
                    f"{inst['vm_state']} instance placed on {inst['host']} holds no allocation",
                )
            )
    return out


def _hosts(instances: list[dict[str, Any]], nodes: dict[str, dict[str, Any]]) -> list[Problem]:
    return [
        Problem(
            "instance_unknown_host",
            {"instance": uuid, "host": inst["host"]},
            f"instance on host {inst['host']}, which is not a compute node",
        )
        for uuid, inst in _live(instances).items()
        if inst["host"] and inst["host"] not in nodes
    ]


def _guests(
    instances: list[dict[str, Any]],
    nodes: dict[str, dict[str, Any]],
    migrations: list[dict[str, Any]],
    reports: dict[str, dict[str, Any]],
    config: ServeConfig,
) -> list[Problem]:
    """Reports of connected hosts only: a disconnected host's last list is stale."""
    by_uuid = {i["uuid"]: i for i in instances}
    moving = {m["instance_uuid"]: m for m in _moving(migrations).values()}
    slack = timedelta(seconds=2 * config.heartbeat_interval)
    out: list[Problem] = []
    for host, report in sorted(reports.items()):
        node = nodes.get(host)
        reported_at = _time(report["reported_at"])
        if node is None or not node["connected"] or reported_at is None:
            continue
        # A report is written when it changes; each later heartbeat confirms it.
        heard = _time(node["last_heartbeat"])
        if heard is not None and heard > reported_at:
            reported_at = heard
        seen: set[str] = set()
        for guest in report["guests"]:
            uuid = guest.get("uuid")
            if not isinstance(uuid, str):
                continue
            seen.add(uuid)
            inst = by_uuid.get(uuid)
            if inst is not None and not inst["deleted"]:
                if uuid in moving:
                    continue
                if inst["host"] == host and _failed_build(inst):
                    out.append(
                        Problem(
                            "failed_build_guest",
                            {"instance": uuid, "host": host},
                            f"host {host} runs a guest of a build that failed (ERROR, never"
                            " launched): the build's clean-up did not reach it",
                        )
                    )
                if inst["host"] == host:
                    continue
            if inst is not None and inst["deleted"]:
                gone = _time(inst["deleted_at"] or inst["terminated_at"] or inst["updated_at"])
                if gone is not None and gone + slack > reported_at:
                    continue  # deleted after (or just before) this report was sent
            where = "no instance" if inst is None else "a deleted instance"
            if inst is not None and not inst["deleted"]:
                where = f"an instance on {inst['host'] or 'no host'}"
            out.append(
                Problem(
                    "orphan_guest",
                    {"instance": uuid, "host": host},
                    f"host {host} runs a guest of {where}",
                )
            )
        for uuid, inst in _live(instances).items():
            if inst["host"] != host or uuid in seen or uuid in moving:
                continue
            if inst["vm_state"] != st.ACTIVE or inst["task_state"] is not None:
                continue
            changed = _time(inst["updated_at"])
            if changed is not None and changed + slack > reported_at:
                continue  # became ACTIVE after the report
            out.append(
                Problem(
                    "guest_missing",
                    {"instance": uuid, "host": host},
                    f"ACTIVE instance not reported by its host {host}",
                )
            )
    return out


def _failed_build(inst: dict[str, Any]) -> bool:
    return inst["vm_state"] == st.ERROR and not inst["launched_at"] and not inst["task_state"]


def _migrations(instances: list[dict[str, Any]], migrations: list[dict[str, Any]]) -> list[Problem]:
    live = _live(instances)
    return [
        Problem(
            "migration_orphan",
            {"migration": m["uuid"], "instance": m["instance_uuid"]},
            f"migration '{m['status']}' for an instance that is deleted or does not exist",
        )
        for m in migrations
        if m["status"] in MIGRATION_IN_FLIGHT and m["instance_uuid"] not in live
    ]


def _task_timeout(task: str, config: ServeConfig) -> float:
    if task in BUILD_TASKS:
        return config.spawn_timeout * max(1, config.build_retries)
    if task.startswith(("resize", "migrat")) or task in (
        st.SHELVING_OFFLOADING,
        st.UNSHELVING,
        st.SHELVING_IMAGE_UPLOADING,
        st.IMAGE_SNAPSHOT,
    ):
        return config.migration_timeout
    return config.action_timeout


def _stuck(instances: list[dict[str, Any]], config: ServeConfig, now: datetime) -> list[Problem]:
    out: list[Problem] = []
    for uuid, inst in _live(instances).items():
        task = inst["task_state"]
        since = _time(inst["updated_at"])
        if not task or since is None:
            continue
        limit = _task_timeout(task, config) + STUCK_MARGIN
        age = (now - since).total_seconds()
        if age > limit:
            out.append(
                Problem(
                    "stuck_task",
                    {"instance": uuid, "task_state": task},
                    f"task '{task}' set for {int(age)} s (limit {int(limit)} s)",
                )
            )
    return out


async def _tokens(
    store: Store, instances: list[dict[str, Any]], config: ServeConfig, now: datetime
) -> list[Problem]:
    out: list[Problem] = []
    grace = config.doctor_token_grace
    expired = await q.expired_tokens(store, iso(now - timedelta(seconds=grace)))
    if expired["n"]:
        out.append(
            Problem(
                "tokens_expired",
                {},
                f"{expired['n']} identity tokens expired more than {grace} s ago are still"
                f" stored (oldest expired {expired['oldest']})",
            )
        )
    live = _live(instances)
    for row in await q.console_tokens_by_instance(store):
        if row["instance_uuid"] not in live:
            out.append(
                Problem(
                    "console_token_orphan",
                    {"instance": row["instance_uuid"]},
                    f"{row['n']} console token(s) for a deleted or unknown instance",
                )
            )
    return out


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _part_image(name: str) -> str:
    """The image id in `.<id>.<random>.part`."""
    return name[1:].rsplit(".", 2)[0]


async def _images(rows: list[dict[str, Any]], directory: Path, checksums: bool) -> list[Problem]:
    by_id = {r["id"]: r for r in rows}
    names = await asyncio.to_thread(
        lambda: sorted(os.listdir(directory)) if directory.is_dir() else []
    )
    files = {n for n in names if not n.startswith(".")}
    out: list[Problem] = []
    for image_id, row in by_id.items():
        if row["status"] not in ("active", "deactivated"):
            continue
        ids = {"image": image_id}
        path = directory / image_id
        if image_id not in files:
            out.append(Problem("image_file_missing", ids, f"{row['status']} image has no file"))
            continue
        size = (await asyncio.to_thread(path.stat)).st_size
        if row["size"] is not None and size != row["size"]:
            out.append(
                Problem("image_size_mismatch", ids, f"file has {size} bytes, image {row['size']}")
            )
        elif checksums and row["checksum"]:
            digest = await asyncio.to_thread(_md5, path)
            if digest != row["checksum"]:
                out.append(
                    Problem(
                        "image_checksum_mismatch",
                        ids,
                        f"file's MD5 {digest}, image's checksum {row['checksum']}",
                    )
                )
    for name in sorted(files - set(by_id)):
        out.append(Problem("image_file_orphan", {"file": name}, "file without an image record"))
    for name in names:
        if name.startswith(".") and name.endswith(PART_SUFFIX):
            image = by_id.get(_part_image(name))
            if image is None or image["status"] != "saving":
                out.append(
                    Problem(
                        "image_partial_upload",
                        {"file": name},
                        "partial upload file with no upload in progress",
                    )
                )
    return out


def summary(problems: list[Problem]) -> str:
    """`clean` or `N problems: kind×n, …`."""
    if not problems:
        return "doctor: clean, no problems found"
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    return f"doctor: {len(problems)} problem(s): {kinds}"
