"""The `settings` table: small named values of the cloud (public URL, bootstrap marker…)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select

from mininova.store.engine import prepared
from mininova.store.schema import settings

if TYPE_CHECKING:
    from mininova.store.engine import Executor

_GET = prepared(select(settings.c.value).where(settings.c.key == bindparam("key")))


async def get(db: Executor, key: str) -> str | None:
    return await db.scalar(_GET, {"key": key})


async def put(db: Executor, key: str, value: str) -> None:
    await db.upsert(settings, {"key": key, "value": value}, conflict=("key",))
