"""Keypairs: per user, unique by (user_id, name); `id` is a serial shown by GET at 2.10+."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, func, select

from mininova.store.engine import prepared
from mininova.store.schema import keypairs

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_GET = prepared(
    select(keypairs).where(
        keypairs.c.user_id == bindparam("user_id"), keypairs.c.name == bindparam("name")
    )
)
_LIST = prepared(
    select(keypairs)
    .where(keypairs.c.user_id == bindparam("user_id"))
    .order_by(keypairs.c.name, keypairs.c.id)
)
_DELETE = prepared(
    delete(keypairs).where(
        keypairs.c.user_id == bindparam("user_id"), keypairs.c.name == bindparam("name")
    )
)
_COUNT = prepared(
    select(func.count()).select_from(keypairs).where(keypairs.c.user_id == bindparam("user_id"))
)


async def get(db: Executor, user_id: str, name: str) -> Row | None:
    """The keypair `name` of `user_id` (all `keypairs` columns), or None."""
    return await db.one(_GET, {"user_id": user_id, "name": name})


async def list_for_user(db: Executor, user_id: str) -> list[Row]:
    """All keypairs of a user, by name (then id)."""
    return await db.all(_LIST, {"user_id": user_id})


async def insert(
    db: Executor,
    *,
    user_id: str,
    name: str,
    public_key: str,
    fingerprint: str,
    key_type: str,
    created_at: str,
) -> int:
    """INSERT a keypair; its new id. The caller checks the name is free and the quota (in
    one transaction holding `tx.lock(f"quota:user:{user_id}")`)."""
    row = await db.insert(
        keypairs,
        {
            "user_id": user_id,
            "name": name,
            "public_key": public_key,
            "fingerprint": fingerprint,
            "type": key_type,
            "created_at": created_at,
        },
        returning=("id",),
    )
    return int(row["id"])


async def delete_keypair(db: Executor, user_id: str, name: str) -> bool:
    """Delete the keypair `name` of `user_id`; False when there was none."""
    return await db.execute(_DELETE, {"user_id": user_id, "name": name}) > 0


async def count_for_user(db: Executor, user_id: str) -> int:
    """How many keypairs a user holds (their `key_pairs` quota usage)."""
    return int(await db.scalar(_COUNT, {"user_id": user_id}) or 0)
