"""Compute quotas: defaults, per-project overrides (table `quotas`), usage and checks.

A limit of -1 means unlimited. Usage is computed live from the database (no reservations).
"""

from __future__ import annotations

from typing import Any

from mininova.errors import QuotaExceeded
from mininova.store import Store
from mininova.store.db import loads

DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "key_pairs": 100,
    "metadata_items": 128,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
    "server_groups": 10,
    "server_group_members": 10,
    "security_groups": 10,
    "security_group_rules": 20,
    "floating_ips": 10,
    "fixed_ips": -1,
}

# Resources whose usage we count (everything else always reports 0 in use).
COUNTED = ("instances", "cores", "ram", "key_pairs", "server_groups")


async def get_limits(store: Store, project_id: str) -> dict[str, int]:
    """The effective hard limits of a project: defaults overlaid with its `quotas` rows."""
    limits = dict(DEFAULTS)
    rows = await store.fetchall(
        "SELECT resource, hard_limit FROM quotas WHERE project_id = ?", (project_id,)
    )
    for row in rows:
        if row["resource"] in limits:
            limits[row["resource"]] = int(row["hard_limit"])
    return limits


async def set_limits(store: Store, project_id: str, updates: dict[str, int]) -> None:
    """Store per-project overrides (unknown resources are ignored)."""
    async with store.transaction():
        for resource, limit in updates.items():
            if resource not in DEFAULTS:
                continue
            await store.execute(
                "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?) "
                "ON CONFLICT(project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
                (project_id, resource, int(limit)),
            )


async def reset_limits(store: Store, project_id: str) -> None:
    """Drop a project's overrides: it falls back to the defaults."""
    await store.execute("DELETE FROM quotas WHERE project_id = ?", (project_id,))


async def _table_exists(store: Store, name: str) -> bool:
    row = await store.fetchone(
        "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return row is not None


async def get_usage(store: Store, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What a project uses now: instances, cores and ram from its non-deleted instances'
    flavor snapshots, key_pairs of `user_id` (keypairs are per user; 0 when None), and
    server_groups when that table exists. Other resources are 0."""
    usage = dict.fromkeys(DEFAULTS, 0)
    rows = await store.fetchall(
        "SELECT flavor FROM instances WHERE project_id = ? AND deleted = 0", (project_id,)
    )
    for row in rows:
        flavor: dict[str, Any] = loads(row["flavor"], {}) or {}
        usage["instances"] += 1
        usage["cores"] += int(flavor.get("vcpus") or 0)
        usage["ram"] += int(flavor.get("ram") or 0)
    if user_id is not None:
        row = await store.fetchone(
            "SELECT COUNT(*) AS n FROM keypairs WHERE user_id = ?", (user_id,)
        )
        usage["key_pairs"] = int((row or {}).get("n") or 0)
    if await _table_exists(store, "server_groups"):
        try:
            row = await store.fetchone(
                "SELECT COUNT(*) AS n FROM server_groups WHERE project_id = ?", (project_id,)
            )
            usage["server_groups"] = int((row or {}).get("n") or 0)
        except Exception:  # noqa: BLE001 - a differently shaped table: report 0
            usage["server_groups"] = 0
    return usage


def _over(limit: int, used: int, requested: int) -> bool:
    return limit >= 0 and used + requested > limit


async def allowed_instances(store: Store, project_id: str, count: int, vcpus: int, ram: int) -> int:
    """How many of `count` instances of this size (per-instance vcpus/ram) still fit (≥0)."""
    limits = await get_limits(store, project_id)
    usage = await get_usage(store, project_id)
    fit = count
    for resource, each in (("instances", 1), ("cores", vcpus), ("ram", ram)):
        limit = limits[resource]
        if limit < 0 or each <= 0:
            continue
        fit = min(fit, max(0, (limit - usage[resource]) // each))
    return fit


async def check_instance_quota(
    store: Store, project_id: str, count: int, vcpus: int, ram: int
) -> None:
    """Raise QuotaExceeded (Nova answers 403 on server create) if `count` more instances with
    `vcpus` cores and `ram` MiB each would exceed the project's instances/cores/ram quota.

    Message as Nova: "Quota exceeded for instances: Requested 3, but already used 9 of 10
    instances" (several resources are joined with ", ")."""
    limits = await get_limits(store, project_id)
    usage = await get_usage(store, project_id)
    requested = {"instances": count, "cores": vcpus * count, "ram": ram * count}
    overs = sorted(r for r, req in requested.items() if _over(limits[r], usage[r], req))
    if not overs:
        return
    names = ", ".join(overs)
    req = ", ".join(str(requested[r]) for r in overs)
    used = ", ".join(str(usage[r]) for r in overs)
    allowed = ", ".join(str(limits[r]) for r in overs)
    raise QuotaExceeded(
        f"Quota exceeded for {names}: Requested {req}, but already used {used} of {allowed} {names}"
    )


async def check_keypair_quota(store: Store, project_id: str, user_id: str) -> None:
    """Raise QuotaExceeded when the user already holds as many keypairs as allowed."""
    limits = await get_limits(store, project_id)
    usage = await get_usage(store, project_id, user_id)
    if _over(limits["key_pairs"], usage["key_pairs"], 1):
        raise QuotaExceeded("Quota exceeded, too many key pairs.")
