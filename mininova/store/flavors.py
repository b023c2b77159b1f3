"""Flavors, their per-project access list (`flavor_access`) and extra specs.

Flavor ids are TEXT (Nova's `flavorid`): always pass `str`. Rows come back as plain dicts with
the `flavors` columns; `is_public` and `disabled` are 0/1 ints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, exists, func, or_, select, update

from mininova.store.engine import prepared
from mininova.store.schema import flavor_access, flavor_extra_specs, flavors

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

# Nova's flavor sort keys → our columns. Nova's `id` (and `vcpu_weight`, which mininova does
# not have) sort by the internal serial id, i.e. creation order: created_at here.
SORT_KEYS: dict[str, str] = {
    "flavorid": "id",
    "id": "created_at",
    "name": "name",
    "memory_mb": "ram",
    "root_gb": "disk",
    "ephemeral_gb": "ephemeral",
    "vcpus": "vcpus",
    "swap": "swap",
    "rxtx_factor": "rxtx_factor",
    "is_public": "is_public",
    "disabled": "disabled",
    "created_at": "created_at",
    "updated_at": "created_at",
    "description": "description",
    "vcpu_weight": "created_at",
}

_has_access = exists().where(
    flavor_access.c.flavor_id == flavors.c.id,
    flavor_access.c.project_id == bindparam("project_id"),
)
_GET = prepared(select(flavors).where(flavors.c.id == bindparam("id")))
_GET_BY_NAME = prepared(select(flavors).where(flavors.c.name == bindparam("name")))
_GET_ACCESSIBLE = prepared(
    select(flavors).where(
        flavors.c.id == bindparam("id"), or_(flavors.c.is_public == 1, _has_access)
    )
)
_HAS_ACCESS = prepared(
    select(flavor_access.c.flavor_id).where(
        flavor_access.c.flavor_id == bindparam("id"),
        flavor_access.c.project_id == bindparam("project_id"),
    )
)
_ACCESS_LIST = prepared(
    select(flavor_access.c.project_id)
    .where(flavor_access.c.flavor_id == bindparam("id"))
    .order_by(flavor_access.c.project_id)
)
_DELETE_ACCESS = prepared(
    delete(flavor_access).where(
        flavor_access.c.flavor_id == bindparam("id"),
        flavor_access.c.project_id == bindparam("project_id"),
    )
)
_EXTRA_SPECS = prepared(
    select(flavor_extra_specs.c.key, flavor_extra_specs.c.value)
    .where(flavor_extra_specs.c.flavor_id == bindparam("id"))
    .order_by(flavor_extra_specs.c.key)
)
_EXTRA_SPECS_MANY = prepared(
    select(flavor_extra_specs.c.flavor_id, flavor_extra_specs.c.key, flavor_extra_specs.c.value)
    .where(flavor_extra_specs.c.flavor_id.in_(bindparam("ids", expanding=True)))
    .order_by(flavor_extra_specs.c.flavor_id, flavor_extra_specs.c.key)
)
_DELETE_SPEC = prepared(
    delete(flavor_extra_specs).where(
        flavor_extra_specs.c.flavor_id == bindparam("id"),
        flavor_extra_specs.c.key == bindparam("key"),
    )
)
_SET_DESCRIPTION = prepared(
    update(flavors).where(flavors.c.id == bindparam("id")).values(description=bindparam("d"))
)
_DELETE = prepared(delete(flavors).where(flavors.c.id == bindparam("id")))
_COUNT = prepared(select(func.count()).select_from(flavors))


# ------------------------------------------------------------------------------ flavors


async def get(db: Executor, flavor_id: str) -> Row | None:
    """The flavor with this id (any visibility, disabled or not), or None."""
    return await db.one(_GET, {"id": str(flavor_id)})


async def get_by_name(db: Executor, name: str) -> Row | None:
    """The flavor with this (unique, case-sensitive) name, or None."""
    return await db.one(_GET_BY_NAME, {"name": name})


async def accessible(
    db: Executor, flavor_id: str, project_id: str | None, *, is_admin: bool = False
) -> Row | None:
    """The flavor if `project_id` may use it, else None.

    A project may use a public flavor and a private one whose access list names it; an admin
    (`is_admin=True`) may use any flavor. Disabled flavors are returned too: the caller
    decides what `disabled` means for it (server create refuses them).
    """
    if is_admin:
        return await get(db, flavor_id)
    return await db.one(_GET_ACCESSIBLE, {"id": str(flavor_id), "project_id": project_id or ""})


async def list_flavors(
    db: Executor,
    *,
    project_id: str | None,
    is_public: bool | None = True,
    include_disabled: bool = True,
    min_ram: int | None = None,
    min_disk: int | None = None,
    sort_key: str = "flavorid",
    descending: bool = False,
) -> list[Row]:
    """Flavors matching a list request, sorted by `sort_key` (a key of SORT_KEYS), then id.

    `is_public`: True = public flavors plus the private ones `project_id` has access to,
    False = private flavors only, None = all flavors.
    """
    column = flavors.c[SORT_KEYS[sort_key]]
    where: list[Any] = []
    if not include_disabled:
        where.append(flavors.c.disabled == 0)
    if is_public is True:
        access = select(flavor_access.c.flavor_id).where(
            flavor_access.c.project_id == (project_id or "")
        )
        where.append(or_(flavors.c.is_public == 1, flavors.c.id.in_(access)))
    elif is_public is False:
        where.append(flavors.c.is_public == 0)
    if min_ram is not None:
        where.append(flavors.c.ram >= int(min_ram))
    if min_disk is not None:
        where.append(flavors.c.disk >= int(min_disk))
    order = (column.desc(), flavors.c.id.desc()) if descending else (column, flavors.c.id)
    statement = select(flavors).where(and_(True, *where)).order_by(*order)
    return await db.all(statement)


async def insert(db: Executor, values: Mapping[str, Any]) -> None:
    """INSERT one flavor row (`values` holds `flavors` columns; `id` and `name` required).

    The caller checks that the id and name are free (in a transaction, see `get`,
    `get_by_name`); a duplicate raises the database's integrity error.
    """
    row = dict(values)
    row["id"] = str(row["id"])
    for flag in ("is_public", "disabled"):
        if flag in row:
            row[flag] = int(row[flag])
    await db.insert(flavors, row)


async def set_description(db: Executor, flavor_id: str, description: str | None) -> bool:
    """Set a flavor's description; False when there is no such flavor."""
    return await db.execute(_SET_DESCRIPTION, {"id": str(flavor_id), "d": description}) > 0


async def delete_flavor(db: Executor, flavor_id: str) -> bool:
    """Delete a flavor with its access list and extra specs; False when it did not exist."""
    params = {"id": str(flavor_id)}
    async with _transaction(db) as tx:
        await tx.execute(delete(flavor_access).where(flavor_access.c.flavor_id == params["id"]))
        await tx.execute(
            delete(flavor_extra_specs).where(flavor_extra_specs.c.flavor_id == params["id"])
        )
        return await tx.execute(_DELETE, params) > 0


async def count(db: Executor) -> int:
    """How many flavors exist."""
    return int(await db.scalar(_COUNT) or 0)


# ------------------------------------------------------------------------ flavor access


async def has_access(db: Executor, flavor_id: str, project_id: str) -> bool:
    """Whether the flavor's access list names `project_id` (ignores `is_public`)."""
    row = await db.one(_HAS_ACCESS, {"id": str(flavor_id), "project_id": project_id})
    return row is not None


async def access_list(db: Executor, flavor_id: str) -> list[str]:
    """The project ids on a flavor's access list, sorted."""
    rows = await db.all(_ACCESS_LIST, {"id": str(flavor_id)})
    return [r["project_id"] for r in rows]


async def add_access(db: Executor, flavor_id: str, project_id: str) -> bool:
    """Put `project_id` on the flavor's access list; False when it was already there."""
    async with _transaction(db) as tx:
        if await has_access(tx, flavor_id, project_id):
            return False
        await tx.insert(flavor_access, {"flavor_id": str(flavor_id), "project_id": project_id})
        return True


async def remove_access(db: Executor, flavor_id: str, project_id: str) -> bool:
    """Take `project_id` off the flavor's access list; False when it was not there."""
    params = {"id": str(flavor_id), "project_id": project_id}
    return await db.execute(_DELETE_ACCESS, params) > 0


# -------------------------------------------------------------------------- extra specs


async def extra_specs(db: Executor, flavor_id: str) -> dict[str, str]:
    """A flavor's extra specs as {key: value}, keys in sorted order ({} when none)."""
    rows = await db.all(_EXTRA_SPECS, {"id": str(flavor_id)})
    return {r["key"]: r["value"] for r in rows}


async def extra_specs_of(db: Executor, flavor_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Extra specs of several flavors in one query: {flavor_id: {key: value}} (every id
    asked for is present, with {} when it has none)."""
    ids = [str(i) for i in flavor_ids]
    found: dict[str, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for r in await db.all(_EXTRA_SPECS_MANY, {"ids": ids}):
            found[r["flavor_id"]][r["key"]] = r["value"]
    return found


async def set_extra_specs(db: Executor, flavor_id: str, specs: Mapping[str, str]) -> None:
    """Create or overwrite extra specs (values are strings), atomically."""
    async with _transaction(db) as tx:
        for key, value in specs.items():
            await tx.upsert(
                flavor_extra_specs,
                {"flavor_id": str(flavor_id), "key": key, "value": str(value)},
                conflict=("flavor_id", "key"),
            )


async def delete_extra_spec(db: Executor, flavor_id: str, key: str) -> bool:
    """Delete one extra spec; False when the flavor had no spec with that key."""
    return await db.execute(_DELETE_SPEC, {"id": str(flavor_id), "key": key}) > 0


def _transaction(db: Executor) -> Any:
    """A transaction on `db`: a Store opens (or joins) one, a Transaction joins itself."""
    store = getattr(db, "store", db)  # a Transaction knows its Store
    return store.transaction()


async def insert_defaults(
    db: Any, defaults: Iterable[tuple[str, str, int, int, int]], created_at: str
) -> None:
    """INSERT the first cloud's flavors, given as (id, name, ram MiB, vcpus, disk GiB)."""
    for flavor_id, name, ram, vcpus, disk in defaults:
        await db.insert(
            flavors,
            {
                "id": str(flavor_id),
                "name": name,
                "ram": int(ram),
                "vcpus": int(vcpus),
                "disk": int(disk),
                "created_at": created_at,
            },
        )
