"""Instance rows, their actions/events and faults: the queries the API and conductor share.

Rows come back decoded: `flavor`, `metadata`, `addresses`, `fault` and `scheduler_hints` are
Python values. The integer columns `vcpus`, `memory_mb` and `root_gb` repeat the flavor's
vcpus/ram/disk so that quota usage is one aggregate (`mininova.store.quotas`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, bindparam, func, select
from sqlalchemy import update as sql_update

from mininova.store.db import dumps, loads
from mininova.store.engine import Prepared, prepared
from mininova.store.schema import (
    compute_nodes,
    images,
    instance_action_events,
    instance_actions,
    instances,
)
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_UPDATABLE = {
    "name",
    "hostname",
    "vm_state",
    "task_state",
    "power_state",
    "host",
    "addresses",
    "metadata",
    "locked",
    "locked_by",
    "locked_reason",
    "fault",
    "launched_at",
    "terminated_at",
    "deleted",
    "access_ip_v4",
    "access_ip_v6",
    "description",
    "availability_zone",
    "system_metadata",
    # rebuild
    "image_ref",
    "key_name",
    "key_data",
    "user_data",
    # resize / migration: the flavor and what the quota counts of it, the old vm_state
    "flavor",
    "flavor_id",
    "vcpus",
    "memory_mb",
    "root_gb",
}
_JSON = {"addresses", "metadata", "fault"}
_JSON_DEFAULTS: dict[str, Any] = {
    "flavor": {},
    "metadata": {},
    "addresses": [],
    "fault": None,
    "scheduler_hints": {},
    "system_metadata": {},
}

_i = instances
_GET = prepared(select(_i).where(_i.c.uuid == bindparam("uuid"), _i.c.deleted == 0))
_GET_ANY = prepared(select(_i).where(_i.c.uuid == bindparam("uuid")))
_ACTIONS = prepared(
    select(instance_actions)
    .where(instance_actions.c.instance_uuid == bindparam("uuid"))
    .order_by(instance_actions.c.id.desc())
)
_LATEST_ACTION = prepared(
    select(instance_actions)
    .where(instance_actions.c.instance_uuid == bindparam("uuid"))
    .order_by(instance_actions.c.id.desc())
    .limit(1)
)
_ACTION_BY_REQUEST = prepared(
    select(instance_actions)
    .where(
        instance_actions.c.instance_uuid == bindparam("uuid"),
        instance_actions.c.request_id == bindparam("request_id"),
    )
    .order_by(instance_actions.c.id)
    .limit(1)
)
_EVENTS = prepared(
    select(instance_action_events)
    .where(instance_action_events.c.action_id == bindparam("action_id"))
    .order_by(instance_action_events.c.id)
)
_FINISH_EVENT = prepared(
    sql_update(instance_action_events)
    .where(instance_action_events.c.id == bindparam("event_id"))
    .values(
        finish_time=bindparam("now"),
        result=bindparam("result"),
        traceback=bindparam("traceback"),
    )
    .returning(instance_action_events.c.action_id)
)
_FINISH_ACTION = prepared(
    sql_update(instance_actions)
    .where(instance_actions.c.id == bindparam("action_id"))
    .values(
        finish_time=bindparam("now"),
        message=func.coalesce(instance_actions.c.message, bindparam("message", type_=Text())),
    )
)

# Server list: the column each API sort key orders by.
SORT_COLUMNS = {
    "created_at": _i.c.created_at,
    "display_name": _i.c.name,
    "updated_at": _i.c.updated_at,
    "uuid": _i.c.uuid,
    "vm_state": _i.c.vm_state,
    "launched_at": _i.c.launched_at,
}
# What the detail list joins in (one query for a whole page).
_NODE_COLUMNS = (
    compute_nodes.c.id.label("node_id"),
    compute_nodes.c.disabled.label("node_disabled"),
    compute_nodes.c.connected.label("node_connected"),
    compute_nodes.c.last_heartbeat.label("node_last_heartbeat"),
    compute_nodes.c.forced_down.label("node_forced_down"),
)


def decode(row: Row | None) -> Row | None:
    """Turn the JSON columns of an instances row into Python values."""
    if row is None:
        return None
    row = dict(row)
    for key, default in _JSON_DEFAULTS.items():
        row[key] = loads(row[key], default)
    if "image_properties" in row:
        row["image_properties"] = loads(row["image_properties"], {}) or {}
    return row


def _encode(key: str, value: Any) -> Any:
    return dumps(value) if key in _JSON_DEFAULTS and value is not None else value


# -------------------------------------------------------------------------------- rows


async def get(db: Executor, uuid: str, *, include_deleted: bool = False) -> Row | None:
    """One instance (decoded), or None; deleted ones only with `include_deleted`."""
    return decode(await db.one(_GET_ANY if include_deleted else _GET, {"uuid": uuid}))


async def create(db: Executor, values: Mapping[str, Any]) -> None:
    """INSERT one instance row; JSON columns given as Python values.

    `vcpus`, `memory_mb` and `root_gb` default to the `flavor` document's vcpus/ram/disk.
    """
    row = {key: _encode(key, value) for key, value in values.items()}
    flavor = values.get("flavor") or {}
    for column, key in (("vcpus", "vcpus"), ("memory_mb", "ram"), ("root_gb", "disk")):
        row.setdefault(column, int(flavor.get(key) or 0))
    await db.insert(instances, row)


async def update(db: Executor, uuid: str, *, expect_task_state: Any = ..., **changes: Any) -> bool:
    """Update columns; with expect_task_state, only if task_state still has that value
    (None: no task; a tuple: any of them).

    Returns False when no row matched (gone, or someone else changed the task state).
    """
    bad = set(changes) - _UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    params = {f"v_{key}": _encode(key, value) for key, value in changes.items()}
    params["v_updated_at"] = now_iso()
    params["uuid"] = uuid
    if expect_task_state is ...:
        guard = ""
    elif expect_task_state is None:
        guard = "none"
    elif isinstance(expect_task_state, tuple):
        guard, params["expect"] = "in", list(expect_task_state)
    else:
        guard, params["expect"] = "eq", expect_task_state
    statement = _update_statement(tuple(sorted(changes)) + ("updated_at",), guard)
    return await db.execute(statement, params) > 0


_updates: dict[tuple[tuple[str, ...], str], Prepared] = {}


def _update_statement(columns: tuple[str, ...], guard: str) -> Prepared:
    """UPDATE instances SET <columns> WHERE uuid [AND the task-state guard], built once."""
    found = _updates.get((columns, guard))
    if found is None:
        statement = (
            sql_update(_i)
            .where(_i.c.uuid == bindparam("uuid"))
            .values({name: bindparam(f"v_{name}") for name in columns})
        )
        if guard == "none":
            statement = statement.where(_i.c.task_state.is_(None))
        elif guard == "in":
            statement = statement.where(_i.c.task_state.in_(bindparam("expect", expanding=True)))
        elif guard == "eq":
            statement = statement.where(_i.c.task_state == bindparam("expect"))
        found = _updates[(columns, guard)] = prepared(statement)
    return found


async def list_instances(
    db: Executor,
    *,
    uuid: str | None = None,
    project_id: str | None = None,
    host: str | None = None,
    image_ref: str | None = None,
    flavor_id: str | None = None,
    changed_since: str | None = None,
    sort_key: str = "created_at",
    descending: bool = True,
    limit: int | None = None,
    with_image_properties: bool = False,
    with_node: bool = False,
    decoded: bool = True,
) -> list[Row]:
    """Live instances matching the filters (None: no filter), decoded, in one query.

    `sort_key` is one of SORT_COLUMNS (ties by id in the same direction; NULLs sort first
    ascending on both backends). `with_image_properties` adds `image_properties` (the image's
    properties, {} when the image is gone); `with_node` adds the host's `node_*` columns
    (`node_id` None when the host has no compute_nodes row). `decoded` False: the JSON
    columns as stored (`decode` turns such a row into the decoded one).
    """
    filters = {
        "uuid": uuid,
        "project_id": project_id,
        "host": host,
        "image_ref": image_ref,
        "flavor_id": flavor_id,
        "changed_since": changed_since,
    }
    params = {name: value for name, value in filters.items() if value is not None}
    if limit is not None:
        params["limit"] = limit
    shape = (
        tuple(sorted(params)),
        sort_key,
        descending,
        with_image_properties,
        with_node,
    )
    statement = _listings.get(shape)
    if statement is None:
        statement = _listings[shape] = _listing(*shape)
    rows = await db.all(statement, params)
    return [decode(row) for row in rows] if decoded else rows  # type: ignore[misc]


_listings: dict[tuple[Any, ...], Prepared] = {}


def _listing(
    given: tuple[str, ...],
    sort_key: str,
    descending: bool,
    with_image_properties: bool,
    with_node: bool,
) -> Prepared:
    """The listing statement of one shape (which filters, order, joins), built once."""
    columns: list[Any] = [_i]
    source: Any = _i
    if with_image_properties:
        columns.append(images.c.properties.label("image_properties"))
        source = source.outerjoin(images, images.c.id == _i.c.image_ref)
    if with_node:
        columns.extend(_NODE_COLUMNS)
        source = source.outerjoin(compute_nodes, compute_nodes.c.host == _i.c.host)
    statement = select(*columns).select_from(source).where(_i.c.deleted == 0)
    for name in given:
        if name == "changed_since":
            statement = statement.where(_i.c.updated_at >= bindparam(name))
        elif name != "limit":
            statement = statement.where(_i.c[name] == bindparam(name))
    column = SORT_COLUMNS[sort_key]
    if descending:
        statement = statement.order_by(column.desc().nulls_last(), _i.c.id.desc())
    else:
        statement = statement.order_by(column.asc().nulls_first(), _i.c.id.asc())
    if "limit" in given:
        statement = statement.limit(bindparam("limit"))
    return prepared(statement)


def fault(message: str, code: int = 500, details: str | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "message": message[:255],
        "details": details or message,
        "created": now_iso(),
    }


# ----------------------------------------------------------------- actions and events


async def start_action(
    db: Executor, uuid: str, action: str, request_id: str, user_id: str, project_id: str
) -> int:
    """Record an instance action (os-instance-actions); its id."""
    row = await db.insert(
        instance_actions,
        {
            "instance_uuid": uuid,
            "action": action,
            "request_id": request_id,
            "user_id": user_id,
            "project_id": project_id,
            "start_time": now_iso(),
        },
        returning=("id",),
    )
    return int(row["id"])


async def latest_action(db: Executor, uuid: str) -> Row | None:
    return await db.one(_LATEST_ACTION, {"uuid": uuid})


async def list_actions(db: Executor, uuid: str) -> list[Row]:
    """An instance's actions, newest first."""
    return await db.all(_ACTIONS, {"uuid": uuid})


async def get_action(db: Executor, uuid: str, request_id: str) -> Row | None:
    """The action a request started on an instance, or None."""
    return await db.one(_ACTION_BY_REQUEST, {"uuid": uuid, "request_id": request_id})


async def action_events(db: Executor, action_id: int) -> list[Row]:
    """The events of one action, in the order they started."""
    return await db.all(_EVENTS, {"action_id": int(action_id)})


async def start_event(db: Executor, uuid: str, event: str, host: str | None) -> int | None:
    """Start an event of the instance's latest action; its id (None: no action)."""
    action = await latest_action(db, uuid)
    if action is None:
        return None
    row = await db.insert(
        instance_action_events,
        {"action_id": action["id"], "event": event, "start_time": now_iso(), "host": host},
        returning=("id",),
    )
    return int(row["id"])


async def finish_event(
    db: Executor, event_id: int | None, ok: bool, traceback: str | None = None
) -> None:
    """Finish an event and its action; a failure marks the action's message "Error" (the
    first message set stays)."""
    if event_id is None:
        return
    now = now_iso()
    rows = await db.all(
        _FINISH_EVENT,
        {
            "event_id": int(event_id),
            "now": now,
            "result": "Success" if ok else "Error",
            "traceback": traceback,
        },
    )
    if not rows:
        return
    await db.execute(
        _FINISH_ACTION,
        {"action_id": int(rows[0]["action_id"]), "now": now, "message": None if ok else "Error"},
    )


# ---- the conductor's queries -----------------------------------------------------------------

_IN_FLIGHT = prepared(
    select(instances.c.uuid, instances.c.vm_state, instances.c.task_state, instances.c.host).where(
        instances.c.deleted == 0, instances.c.task_state.is_not(None)
    )
)
_MARK_DELETED = prepared(
    sql_update(instances)
    .where(instances.c.uuid == bindparam("uuid"))
    .values(
        deleted=1,
        vm_state=bindparam("vm_state"),
        task_state=None,
        power_state=0,
        terminated_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)


_SYNC_VIEW = prepared(
    select(
        instances.c.uuid,
        instances.c.host,
        instances.c.vm_state,
        instances.c.task_state,
        instances.c.power_state,
        instances.c.addresses,
    ).where(instances.c.host == bindparam("host"), instances.c.deleted == 0)
)


_SETTLED_IN = prepared(
    select(instances.c.uuid, instances.c.system_metadata).where(
        instances.c.vm_state == bindparam("vm_state"),
        instances.c.task_state.is_(None),
        instances.c.deleted == 0,
    )
)


async def settled_in_state(db: Executor, vm_state: str) -> list[Row]:
    """uuid and (decoded) system_metadata of live instances in `vm_state` with no task."""
    rows = await db.all(_SETTLED_IN, {"vm_state": vm_state})
    for row in rows:
        row["system_metadata"] = loads(row["system_metadata"], {})
    return rows


async def power_sync_view(db: Executor, host: str) -> list[Row]:
    """What the power-state sync compares, for every live instance on `host` (one query)."""
    rows = await db.all(_SYNC_VIEW, {"host": host})
    for row in rows:
        row["addresses"] = loads(row["addresses"], [])
    return rows


async def in_flight(db: Executor) -> list[Row]:
    """uuid, vm_state, task_state and host of live instances with a task under way."""
    return await db.all(_IN_FLIGHT)


async def mark_deleted(db: Executor, uuid: str, vm_state: str) -> None:
    """The row stays (soft-deleted, as in Nova) with its terminated_at."""
    await db.execute(_MARK_DELETED, {"uuid": uuid, "vm_state": vm_state, "now": now_iso()})


async def count_live_in_project(db: Any, project_id: str) -> int:
    """How many instances (not deleted) the project has."""
    from sqlalchemy import func as sql_func
    from sqlalchemy import select as sql_select

    from mininova.store.schema import instances as table

    statement = (
        sql_select(sql_func.count())
        .select_from(table)
        .where(table.c.project_id == project_id, table.c.deleted == 0)
    )
    return int(await db.scalar(statement) or 0)


async def seed_ids(store: Any, start: int) -> None:
    """Make the next instance id `start` + 1 (a new, empty cloud only)."""
    from mininova.store.schema import instances as table

    await store.seed_sequence(table, start)


# ---- per-host reads for os-services / os-hypervisors (infrastructure) -----------------------

_LIVE_ON_HOST = prepared(
    select(func.count().label("n")).where(_i.c.host == bindparam("host"), _i.c.deleted == 0)
)
_BUSY_BY_HOST = prepared(
    select(_i.c.host, func.count().label("n"))
    .where(_i.c.host.is_not(None), _i.c.deleted == 0, _i.c.task_state.is_not(None))
    .group_by(_i.c.host)
)


async def count_live_on_host(db: Executor, host: str) -> int:
    """How many live (not deleted) instances are placed on `host`."""
    return int(await db.scalar(_LIVE_ON_HOST, {"host": host}) or 0)


async def busy_by_host(db: Executor) -> dict[str, int]:
    """Per host, the live instances with a task under way (a hypervisor's current_workload)."""
    return {row["host"]: int(row["n"]) for row in await db.all(_BUSY_BY_HOST)}


async def servers_on_hosts(db: Executor, hosts: list[str]) -> dict[str, list[Row]]:
    """id and uuid of the live instances on each of `hosts`, in id order (one query)."""
    found: dict[str, list[Row]] = {host: [] for host in hosts}
    if hosts:
        statement = (
            select(_i.c.id, _i.c.uuid, _i.c.host)
            .where(_i.c.host.in_(hosts), _i.c.deleted == 0)
            .order_by(_i.c.id)
        )
        for row in await db.all(statement):
            found[row["host"]].append({"id": row["id"], "uuid": row["uuid"]})
    return found


# ---- resuming work after a controller restart ------------------------------------------------

_EVENTS_NAMED = prepared(
    select(instance_action_events.c.id, instance_action_events.c.finish_time)
    .select_from(
        instance_action_events.join(
            instance_actions, instance_actions.c.id == instance_action_events.c.action_id
        )
    )
    .where(
        instance_actions.c.instance_uuid == bindparam("uuid"),
        instance_action_events.c.event == bindparam("event"),
    )
    .order_by(instance_action_events.c.id)
)


async def events_named(db: Executor, uuid: str, event: str) -> list[Row]:
    """id and finish_time (None: still open) of the instance's action events named `event`,
    over all its actions, oldest first (e.g. how many scheduling attempts a build made)."""
    return await db.all(_EVENTS_NAMED, {"uuid": uuid, "event": event})
