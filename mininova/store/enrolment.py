"""The `join_tokens` table: admin-issued tokens an agent trades for a host credential.

Host credentials themselves live in `mininova.store.hosts` (`host_credentials`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, case, delete, select, update

from mininova.store.engine import prepared
from mininova.store.schema import join_tokens

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

_t = join_tokens

_GET = prepared(select(_t).where(_t.c.id == bindparam("id")))
_BY_HASH = prepared(select(_t).where(_t.c.token_hash == bindparam("hash")))
_LIST = prepared(select(_t).order_by(_t.c.created_at, _t.c.id))
_REVOKE = prepared(
    update(_t)
    .where(_t.c.id == bindparam("id"), _t.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
_PURGE = prepared(
    delete(_t).where(
        (_t.c.expires_at.is_not(None) & (_t.c.expires_at < bindparam("cutoff")))
        | (_t.c.revoked_at.is_not(None) & (_t.c.revoked_at < bindparam("cutoff")))
    )
)
_USE = prepared(
    update(_t)
    .where(_t.c.id == bindparam("id"))
    .values(
        used=_t.c.used + 1,
        uses_left=case((_t.c.uses_left.is_(None), None), else_=_t.c.uses_left - 1),
    )
)


async def create(
    db: Executor,
    token_id: str,
    token_hash: str,
    description: str,
    created_at: str,
    expires_at: str | None,
    uses_left: int | None,
) -> None:
    await db.insert(
        _t,
        {
            "id": token_id,
            "token_hash": token_hash,
            "description": description,
            "created_at": created_at,
            "expires_at": expires_at,
            "uses_left": uses_left,
        },
    )


async def get(db: Executor, token_id: str) -> Row | None:
    return await db.one(_GET, {"id": token_id})


async def by_hash(db: Executor, token_hash: str) -> Row | None:
    return await db.one(_BY_HASH, {"hash": token_hash})


async def list_all(db: Executor) -> list[Row]:
    """Every join token, oldest first."""
    return await db.all(_LIST)


async def revoke(db: Executor, token_id: str, now: str) -> bool:
    """Mark a token revoked; False if unknown or already revoked."""
    return await db.execute(_REVOKE, {"id": token_id, "now": now}) > 0


async def purge(db: Executor, cutoff: str) -> int:
    """Forget tokens that expired or were revoked before `cutoff`; how many."""
    return await db.execute(_PURGE, {"cutoff": cutoff})


async def use_once(db: Executor, token_id: str) -> None:
    """Count one use (and take one off `uses_left` when the token has a limit)."""
    await db.execute(_USE, {"id": token_id})
