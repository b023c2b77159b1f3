"""The `console_tokens` table: hashes of console access tokens (nova-consoleauth)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, update

from mininova.store.engine import prepared
from mininova.store.schema import console_tokens

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_t = console_tokens

_GET = prepared(select(_t).where(_t.c.token_hash == bindparam("hash")))
_CONSUME = prepared(
    update(_t).where(_t.c.token_hash == bindparam("hash"), _t.c.used == 0).values(used=1)
)
_DELETE = prepared(delete(_t).where(_t.c.token_hash == bindparam("hash")))
_DELETE_INSTANCE = prepared(delete(_t).where(_t.c.instance_uuid == bindparam("uuid")))
_PURGE = prepared(delete(_t).where(_t.c.expires_at <= bindparam("now")))


async def create(
    db: Executor,
    token_hash: str,
    instance_uuid: str,
    console_type: str,
    expires_at: str,
    single_use: bool,
    created_at: str,
) -> None:
    await db.insert(
        _t,
        {
            "token_hash": token_hash,
            "instance_uuid": instance_uuid,
            "console_type": console_type,
            "expires_at": expires_at,
            "single_use": int(single_use),
            "used": 0,
            "created_at": created_at,
        },
    )


async def get(db: Executor, token_hash: str) -> Row | None:
    return await db.one(_GET, {"hash": token_hash})


async def consume(db: Executor, token_hash: str) -> bool:
    """Mark a token used; False if it was already used (or is gone). Atomic (guarded UPDATE)."""
    return await db.execute(_CONSUME, {"hash": token_hash}) == 1


async def delete_token(db: Executor, token_hash: str) -> int:
    return await db.execute(_DELETE, {"hash": token_hash})


async def delete_for_instance(db: Executor, instance_uuid: str) -> int:
    return await db.execute(_DELETE_INSTANCE, {"uuid": instance_uuid})


async def purge_expired(db: Executor, now: str) -> int:
    """Drop tokens whose `expires_at` is at or before `now` (ISO text compares in order)."""
    return await db.execute(_PURGE, {"now": now})


async def list_tokens(db: Executor, instance_uuid: str | None = None) -> list[Row]:
    """Every stored token (of one instance), oldest first (tests, diagnostics)."""
    statement = select(_t).order_by(_t.c.created_at, _t.c.token_hash)
    if instance_uuid is not None:
        statement = statement.where(_t.c.instance_uuid == instance_uuid)
    return await db.all(statement)
