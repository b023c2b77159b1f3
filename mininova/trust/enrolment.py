"""Join tokens and per-host credentials (stored only as SHA-256 hashes).

A join token (`mnj_<id>.<secret>`) is created by the admin with a lifetime and a number of
uses. At its first hello an agent trades one use of it for a host credential (`mnh_<secret>`)
bound to its host name; from then on the agent authenticates with that credential only. A
bound name cannot be claimed with a join token while its credential is valid. Revoking the
host (`openstack compute service delete`) revokes the credential.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mininova.store import Store
from mininova.timeutil import iso, now_utc, parse_iso

JOIN_PREFIX = "mnj_"
HOST_PREFIX = "mnh_"


class EnrolmentRefused(Exception):
    """A join token or host credential that may not be used; the message says why."""


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class JoinToken:
    id: str
    description: str
    created_at: str
    expires_at: str | None
    uses_left: int | None
    used: int
    revoked_at: str | None

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and parse_iso(self.expires_at) <= now_utc():
            return "expired"
        if self.uses_left is not None and self.uses_left <= 0:
            return "used up"
        return "valid"


def _token(row: dict[str, Any]) -> JoinToken:
    return JoinToken(
        row["id"],
        row["description"],
        row["created_at"],
        row["expires_at"],
        row["uses_left"],
        row["used"],
        row["revoked_at"],
    )


async def create_join_token(
    store: Store, ttl: int | None = 86400, uses: int | None = None, description: str = ""
) -> tuple[str, JoinToken]:
    """A new join token (the secret is returned once, only its hash is kept)."""
    token_id = secrets.token_hex(4)
    secret = f"{JOIN_PREFIX}{token_id}.{secrets.token_urlsafe(24)}"
    now = now_utc()
    expires = iso(now + timedelta(seconds=ttl)) if ttl else None
    await store.execute(
        "INSERT INTO join_tokens (id, token_hash, description, created_at, expires_at, uses_left)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (token_id, secret_hash(secret), description, iso(now), expires, uses),
    )
    row = await store.fetchone("SELECT * FROM join_tokens WHERE id = ?", (token_id,))
    assert row is not None
    return secret, _token(row)


async def list_join_tokens(store: Store) -> list[JoinToken]:
    rows = await store.fetchall("SELECT * FROM join_tokens ORDER BY created_at")
    return [_token(r) for r in rows]


async def revoke_join_token(store: Store, token_id: str) -> bool:
    """Revoke by id (the part after `mnj_` and before the dot); False if unknown."""
    token_id = token_id.removeprefix(JOIN_PREFIX).split(".", 1)[0]
    changed = await store.execute(
        "UPDATE join_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (iso(now_utc()), token_id),
    )
    return changed > 0


async def purge_join_tokens(store: Store, older_than: timedelta = timedelta(days=7)) -> None:
    """Forget tokens that expired or were revoked long ago."""
    cutoff = iso(now_utc() - older_than)
    await store.execute(
        "DELETE FROM join_tokens WHERE (expires_at IS NOT NULL AND expires_at < ?)"
        " OR (revoked_at IS NOT NULL AND revoked_at < ?)",
        (cutoff, cutoff),
    )


async def check_join_token(store: Store, secret: str) -> JoinToken:
    """The token for this secret if it may be used now; EnrolmentRefused otherwise."""
    row = await store.fetchone(
        "SELECT * FROM join_tokens WHERE token_hash = ?", (secret_hash(secret),)
    )
    if row is None:
        raise EnrolmentRefused("unknown join token")
    token = _token(row)
    if token.state != "valid":
        raise EnrolmentRefused(f"join token {token.id} is {token.state}")
    return token


async def enrol_host(store: Store, secret: str, host: str) -> str:
    """Trade one use of a join token for a credential bound to `host` (atomically)."""
    async with store.transaction():
        token = await check_join_token(store, secret)
        bound = await store.fetchone(
            "SELECT host FROM host_credentials WHERE host = ? AND revoked_at IS NULL", (host,)
        )
        if bound is not None:
            raise EnrolmentRefused(
                f"host name {host!r} is already enrolled; only its own credential may use it"
            )
        credential = HOST_PREFIX + secrets.token_urlsafe(32)
        now = iso(now_utc())
        await store.execute(
            "UPDATE join_tokens SET used = used + 1,"
            " uses_left = CASE WHEN uses_left IS NULL THEN NULL ELSE uses_left - 1 END"
            " WHERE id = ?",
            (token.id,),
        )
        await store.execute(
            "INSERT INTO host_credentials (host, credential_hash, join_token_id, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(host) DO UPDATE SET"
            " credential_hash = excluded.credential_hash,"
            " join_token_id = excluded.join_token_id, created_at = excluded.created_at,"
            " last_seen_at = NULL, revoked_at = NULL",
            (host, secret_hash(credential), token.id, now),
        )
    return credential


async def host_for_credential(store: Store, credential: str) -> str:
    """The host a credential is bound to; EnrolmentRefused if unknown or revoked."""
    row = await store.fetchone(
        "SELECT host, revoked_at FROM host_credentials WHERE credential_hash = ?",
        (secret_hash(credential),),
    )
    if row is None:
        raise EnrolmentRefused("unknown host credential")
    if row["revoked_at"]:
        raise EnrolmentRefused(f"the credential of host {row['host']!r} was revoked")
    return row["host"]


async def revoke_host(store: Store, host: str) -> bool:
    changed = await store.execute(
        "UPDATE host_credentials SET revoked_at = ? WHERE host = ? AND revoked_at IS NULL",
        (iso(now_utc()), host),
    )
    return changed > 0


def bearer_secret(authorization: str) -> str:
    """The secret of an `Authorization: Bearer <secret>` header ("" for anything else)."""
    return authorization[7:].strip() if authorization.startswith("Bearer ") else ""


def kind_of(secret: str) -> str:
    """ "join", "host" or "" for an agent's bearer secret."""
    if secret.startswith(JOIN_PREFIX):
        return "join"
    if secret.startswith(HOST_PREFIX):
        return "host"
    return ""
