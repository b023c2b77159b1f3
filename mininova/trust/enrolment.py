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
from typing import TYPE_CHECKING, Any

from mininova.store import Store, hosts
from mininova.store import enrolment as join_tokens
from mininova.timeutil import iso, now_utc, parse_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor

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
    await join_tokens.create(
        store, token_id, secret_hash(secret), description, iso(now), expires, uses
    )
    row = await join_tokens.get(store, token_id)
    assert row is not None
    return secret, _token(row)


async def list_join_tokens(store: Store) -> list[JoinToken]:
    return [_token(r) for r in await join_tokens.list_all(store)]


async def revoke_join_token(store: Store, token_id: str) -> bool:
    """Revoke by id (the part after `mnj_` and before the dot); False if unknown."""
    token_id = token_id.removeprefix(JOIN_PREFIX).split(".", 1)[0]
    return await join_tokens.revoke(store, token_id, iso(now_utc()))


async def purge_join_tokens(store: Store, older_than: timedelta = timedelta(days=7)) -> None:
    """Forget tokens that expired or were revoked long ago."""
    await join_tokens.purge(store, iso(now_utc() - older_than))


async def check_join_token(store: Executor, secret: str) -> JoinToken:
    """The token for this secret if it may be used now; EnrolmentRefused otherwise."""
    row = await join_tokens.by_hash(store, secret_hash(secret))
    if row is None:
        raise EnrolmentRefused("unknown join token")
    token = _token(row)
    if token.state != "valid":
        raise EnrolmentRefused(f"join token {token.id} is {token.state}")
    return token


async def enrol_host(store: Store, secret: str, host: str) -> str:
    """Trade one use of a join token for a credential bound to `host` (atomically)."""
    async with store.transaction() as tx:
        # Serialise enrolments: the checks below (token uses left, name not bound) must still
        # hold when this transaction writes (PostgreSQL runs transactions concurrently).
        await tx.lock("enrolment")
        token = await check_join_token(tx, secret)
        if await hosts.host_is_bound(tx, host):
            raise EnrolmentRefused(
                f"host name {host!r} is already enrolled; only its own credential may use it"
            )
        credential = HOST_PREFIX + secrets.token_urlsafe(32)
        await join_tokens.use_once(tx, token.id)
        await hosts.bind_credential(tx, host, secret_hash(credential), token.id, iso(now_utc()))
    return credential


async def host_for_credential(store: Store, credential: str) -> str:
    """The host a credential is bound to; EnrolmentRefused if unknown or revoked."""
    row = await hosts.credential_by_hash(store, secret_hash(credential))
    if row is None:
        raise EnrolmentRefused("unknown host credential")
    if row["revoked_at"]:
        raise EnrolmentRefused(f"the credential of host {row['host']!r} was revoked")
    return row["host"]


async def revoke_host(store: Store, host: str) -> bool:
    return await hosts.revoke_credential(store, host, iso(now_utc()))


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
