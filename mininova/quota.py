"""Compute quotas: defaults, per-project overrides (table `quotas`), usage and checks.

A limit of -1 means unlimited. Usage is computed live from the database (no reservations).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mininova.errors import Invalid, QuotaExceeded
from mininova.store import floating_ips, quotas, security_groups, server_groups

if TYPE_CHECKING:
    from mininova.store.engine import Executor

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


# Quota classes (os-quota-class-sets) keep their limits as `quotas` rows of this pseudo
# project; as Nova, only the `default` class counts: it replaces DEFAULTS for every project.
_CLASS_PREFIX = "quota_class:"
DEFAULT_CLASS = "default"


async def class_limits(db: Executor, class_name: str = DEFAULT_CLASS) -> dict[str, int]:
    """A quota class's limits: DEFAULTS overlaid with the default class, then with its own."""
    limits = dict(DEFAULTS)
    names = [DEFAULT_CLASS] if class_name == DEFAULT_CLASS else [DEFAULT_CLASS, class_name]
    for name in names:
        for resource, limit in (await quotas.limits(db, _CLASS_PREFIX + name)).items():
            if resource in limits:
                limits[resource] = limit
    return limits


async def update_class_limits(
    db: Executor, class_name: str, updates: dict[str, int]
) -> dict[str, int]:
    """os-quota-class-sets update: store the class's limits (-1 or more); its limits after."""
    for key, limit in updates.items():
        if limit < -1:
            raise Invalid(f"Quota limit {limit} for {key} must be -1 or greater.")
    await set_limits(db, _CLASS_PREFIX + class_name, updates)
    return await class_limits(db, class_name)


async def get_limits(db: Executor, project_id: str) -> dict[str, int]:
    """The effective hard limits of a project: the default quota class (DEFAULTS unless
    changed) overlaid with the project's `quotas` rows."""
    limits = await class_limits(db)
    for resource, limit in (await quotas.limits(db, project_id)).items():
        if resource in limits:
            limits[resource] = limit
    return limits


async def set_limits(db: Executor, project_id: str, updates: dict[str, int]) -> None:
    """Store per-project overrides (unknown resources are ignored), atomically."""
    async with _transaction(db) as tx:
        for resource, limit in updates.items():
            if resource in DEFAULTS:
                await quotas.set_limit(tx, project_id, resource, int(limit))


async def update_limits(
    db: Executor,
    project_id: str,
    updates: dict[str, int],
    *,
    force: bool = False,
    user_id: str | None = None,
) -> dict[str, int]:
    """os-quota-sets update: each new limit must be -1 or more and, unless `force`, not
    below what is in use (Invalid otherwise). Checked and stored under the project's quota
    lock in one transaction; the effective limits afterwards."""
    async with _transaction(db) as tx:
        await tx.lock(f"quota:{project_id}")
        usage = await get_usage(tx, project_id, user_id)
        for key, limit in updates.items():
            if limit < -1:
                raise Invalid(f"Quota limit {limit} for {key} must be -1 or greater.")
            if not force and limit != -1 and limit < usage[key]:
                raise Invalid(
                    f"Quota limit {limit} for {key} must be greater than or equal "
                    f"to already used and reserved {usage[key]}."
                )
        await set_limits(tx, project_id, updates)
        return await get_limits(tx, project_id)


async def reset_limits(db: Executor, project_id: str) -> None:
    """Drop a project's overrides: it falls back to the defaults."""
    await quotas.reset(db, project_id)


async def compute_usage(
    db: Executor, project_id: str, user_id: str | None = None
) -> dict[str, int]:
    """What a project uses of the compute resources (one aggregate query): instances, cores
    and ram of its live instances, key_pairs of `user_id` (keypairs are per user; 0 when
    None) and its server_groups. Other resources are 0."""
    usage = dict.fromkeys(DEFAULTS, 0)
    usage.update(await quotas.usage(db, project_id, user_id))
    return usage


async def get_usage(db: Executor, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """`compute_usage` plus the network API's security groups, rules and floating IPs (the
    limits, quota-set and quota-update views)."""
    usage = await compute_usage(db, project_id, user_id)
    usage["security_groups"] = await security_groups.count_groups(db, project_id)
    usage["security_group_rules"] = await security_groups.count_rules(db, project_id)
    usage["floating_ips"] = await floating_ips.count_in_project(db, project_id)
    return usage


def _transaction(db: Executor) -> Any:
    """A transaction on `db`'s store (joins the caller's when `db` is one)."""
    return getattr(db, "store", db).transaction()


def _over(limit: int, used: int, requested: int) -> bool:
    return limit >= 0 and used + requested > limit


async def allowed_instances(db: Executor, project_id: str, count: int, vcpus: int, ram: int) -> int:
    """How many of `count` instances of this size (per-instance vcpus/ram) still fit (≥0)."""
    limits = await get_limits(db, project_id)
    usage = await quotas.instance_usage(db, project_id)
    fit = count
    for resource, each in (("instances", 1), ("cores", vcpus), ("ram", ram)):
        limit = limits[resource]
        if limit < 0 or each <= 0:
            continue
        fit = min(fit, max(0, (limit - usage[resource]) // each))
    return fit


async def check_instance_quota(
    db: Executor, project_id: str, count: int, vcpus: int, ram: int
) -> None:
    """Raise QuotaExceeded (Nova answers 403 on server create) if `count` more instances with
    `vcpus` cores and `ram` MiB each would exceed the project's instances/cores/ram quota.

    Message as Nova: "Quota exceeded for instances: Requested 3, but already used 9 of 10
    instances" (several resources are joined with ", ").

    Run it inside the transaction that inserts the instances, after
    `tx.lock(f"quota:{project_id}")`, so concurrent creates cannot both pass."""
    limits = await get_limits(db, project_id)
    usage = await quotas.instance_usage(db, project_id)
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


async def check_keypair_quota(db: Executor, project_id: str, user_id: str) -> None:
    """Raise QuotaExceeded when the user already holds as many keypairs as allowed."""
    limits = await get_limits(db, project_id)
    usage = await compute_usage(db, project_id, user_id)
    if _over(limits["key_pairs"], usage["key_pairs"], 1):
        raise QuotaExceeded("Quota exceeded, too many key pairs.")


async def fit_instances(
    db: Executor, project_id: str, min_count: int, max_count: int, vcpus: int, ram: int
) -> int:
    """As many instances as the quota allows: max_count if it fits, else min_count, else
    QuotaExceeded (the message of the min_count check, or of max_count when they are equal)."""
    try:
        await check_instance_quota(db, project_id, max_count, vcpus, ram)
        return max_count
    except QuotaExceeded:
        if min_count == max_count:
            raise
    await check_instance_quota(db, project_id, min_count, vcpus, ram)
    return min_count


async def check_metadata_items(db: Executor, project_id: str, count: int) -> None:
    """metadata_items: a server may not carry more metadata items than the project's limit.

    Message as Nova's MetadataLimitExceeded (403): "Maximum number of metadata items exceeds
    128"."""
    limit = (await get_limits(db, project_id))["metadata_items"]
    if _over(limit, 0, count):
        raise QuotaExceeded(f"Maximum number of metadata items exceeds {limit}")


async def metadata_items_allowed(db: Executor, project_id: str, count: int) -> bool:
    """Whether `count` metadata items fit the project's metadata_items limit."""
    return not _over((await get_limits(db, project_id))["metadata_items"], 0, count)


async def check_group_members(db: Executor, group: dict[str, Any], count: int) -> None:
    """server_group_members: the group's project may not have more members than allowed."""
    limit = (await get_limits(db, group["project_id"]))["server_group_members"]
    if limit >= 0 and await server_groups.member_count(db, group["id"]) + count > limit:
        raise QuotaExceeded("Quota exceeded, too many servers in group")
