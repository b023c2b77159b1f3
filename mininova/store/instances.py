"""Instance rows, their actions/events and faults: the queries the API and conductor share."""

from __future__ import annotations

from typing import Any

from mininova.store.db import Store, dumps, loads
from mininova.timeutil import now_iso

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
}
_JSON = {"addresses", "metadata", "fault"}


def decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Turn the JSON columns of an instances row into Python values."""
    if row is None:
        return None
    row = dict(row)
    row["flavor"] = loads(row["flavor"], {})
    row["metadata"] = loads(row["metadata"], {})
    row["addresses"] = loads(row["addresses"], [])
    row["fault"] = loads(row["fault"], None)
    row["scheduler_hints"] = loads(row["scheduler_hints"], {})
    return row


async def get(store: Store, uuid: str, *, include_deleted: bool = False) -> dict | None:
    sql = "SELECT * FROM instances WHERE uuid = ?"
    if not include_deleted:
        sql += " AND deleted = 0"
    return decode(await store.fetchone(sql, (uuid,)))


async def update(store: Store, uuid: str, *, expect_task_state: Any = ..., **changes: Any) -> bool:
    """Update columns; with expect_task_state, only if task_state still has that value.

    Returns False when the guard did not match (someone else changed the instance).
    """
    bad = set(changes) - _UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    cols = []
    params: list[Any] = []
    for key, value in changes.items():
        cols.append(f"{key} = ?")
        params.append(dumps(value) if key in _JSON and value is not None else value)
    cols.append("updated_at = ?")
    params.append(now_iso())
    sql = f"UPDATE instances SET {', '.join(cols)} WHERE uuid = ?"
    params.append(uuid)
    if expect_task_state is not ...:
        if expect_task_state is None:
            sql += " AND task_state IS NULL"
        elif isinstance(expect_task_state, tuple):
            sql += f" AND task_state IN ({', '.join('?' for _ in expect_task_state)})"
            params.extend(expect_task_state)
        else:
            sql += " AND task_state = ?"
            params.append(expect_task_state)
    return await store.execute(sql, params) > 0


def fault(message: str, code: int = 500, details: str | None = None) -> dict[str, Any]:
    return {
        "code": code,
        "message": message[:255],
        "details": details or message,
        "created": now_iso(),
    }


async def start_action(
    store: Store, uuid: str, action: str, request_id: str, user_id: str, project_id: str
) -> int:
    return await store.insert(
        "INSERT INTO instance_actions (instance_uuid, action, request_id, user_id, project_id,"
        " start_time) VALUES (?, ?, ?, ?, ?, ?)",
        (uuid, action, request_id, user_id, project_id, now_iso()),
    )


async def latest_action(store: Store, uuid: str) -> dict | None:
    return await store.fetchone(
        "SELECT * FROM instance_actions WHERE instance_uuid = ? ORDER BY id DESC LIMIT 1", (uuid,)
    )


async def start_event(store: Store, uuid: str, event: str, host: str | None) -> int | None:
    action = await latest_action(store, uuid)
    if action is None:
        return None
    return await store.insert(
        "INSERT INTO instance_action_events (action_id, event, start_time, host)"
        " VALUES (?, ?, ?, ?)",
        (action["id"], event, now_iso(), host),
    )


async def finish_event(
    store: Store, event_id: int | None, ok: bool, traceback: str | None = None
) -> None:
    if event_id is None:
        return
    now = now_iso()
    await store.execute(
        "UPDATE instance_action_events SET finish_time = ?, result = ?, traceback = ? WHERE id = ?",
        (now, "Success" if ok else "Error", traceback, event_id),
    )
    row = await store.fetchone(
        "SELECT action_id FROM instance_action_events WHERE id = ?", (event_id,)
    )
    if row:
        await store.execute(
            "UPDATE instance_actions SET finish_time = ?, message = COALESCE(message, ?)"
            " WHERE id = ?",
            (now, None if ok else "Error", row["action_id"]),
        )
