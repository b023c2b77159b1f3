"""The `host_guests` table: the guests each agent last reported (hello and heartbeats)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import host_guests

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_ALL = prepared(select(host_guests))


def _entry(guest: Any) -> dict[str, Any] | None:
    if not isinstance(guest, dict) or not isinstance(guest.get("uuid"), str):
        return None
    power = guest.get("power_state")
    return {"uuid": guest["uuid"], "power_state": power if isinstance(power, int) else None}


async def record(db: Executor, host: str, guests: list[Any], now: str) -> None:
    """Replace `host`'s report with `guests` (agent dicts; only uuid and power_state kept)."""
    entries = sorted(
        (e for e in map(_entry, guests) if e is not None), key=lambda e: str(e["uuid"])
    )
    await db.upsert(
        host_guests,
        {"host": host, "guests": dumps(entries), "reported_at": now},
        conflict=("host",),
    )


async def all_reports(db: Executor) -> dict[str, Row]:
    """host → {"guests": [{"uuid", "power_state"}, …], "reported_at"}."""
    out: dict[str, Row] = {}
    for row in await db.all(_ALL):
        out[row["host"]] = {"guests": loads(row["guests"], []), "reported_at": row["reported_at"]}
    return out
