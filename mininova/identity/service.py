"""Identity logic: password hashing, token issue/validate/revoke, role look-ups."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mininova.identity import passwords
from mininova.identity.login_limits import LoginLimits
from mininova.identity.passwords import check_password, hash_password
from mininova.store import Store
from mininova.store import identity as repo
from mininova.timeutil import iso, now_utc, parse_iso

if TYPE_CHECKING:
    from mininova.config import ServeConfig

log = logging.getLogger(__name__)

DEFAULT_DOMAIN = {"id": "default", "name": "Default"}
# How long a token validation is reused before roles and enabled flags are read again (s).
TOKEN_CACHE_TTL = 2.0
# How many validations the cache keeps at most (the oldest go first).
TOKEN_CACHE_SIZE = 10_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TokenInfo:
    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: list[dict[str, str]]
    issued_at: datetime
    expires_at: datetime
    audit_id: str
    # How the user authenticated ("password", or "token" first for a rescoped token).
    methods: tuple[str, ...] = ("password",)
    # A rescoped token's second audit id: the audit id of the first token of its chain.
    parent_audit_id: str | None = None


# Keystone's answer to every failed authentication that names no user or project.
NOT_AUTHENTICATED = "The request you have made requires authentication."


class AuthFailed(Exception):
    """Wrong credentials or an invalid/expired token."""


class AccountLocked(AuthFailed):
    """Keystone's 401 for a user locked out after too many wrong passwords."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"The account is locked for user: {user_id}.")


class TooManyAttempts(Exception):
    """Too many failed password logins from one source address (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed authentication attempts from this address. "
            f"Retry after {retry_after} seconds."
        )
        self.retry_after = retry_after


class IdentityService:
    def __init__(
        self,
        store: Store,
        token_ttl: int = 3600,
        *,
        cache_size: int = TOKEN_CACHE_SIZE,
        limits: LoginLimits | None = None,
        purge_interval: float = 0.0,
    ) -> None:
        """`limits` default: no lockout and no per-address limit; `purge_interval` > 0 is
        how often `purge_loop` deletes expired tokens."""
        self.store = store
        self.token_ttl = token_ttl
        self.cache_ttl = TOKEN_CACHE_TTL
        self.cache_size = max(0, cache_size)
        self.limits = limits or LoginLimits(failure_attempts=0, failures_per_address=0)
        self.purge_interval = purge_interval
        # token hash -> (validation, time.monotonic() when it was read), oldest first
        self._cache: OrderedDict[str, tuple[TokenInfo, float]] = OrderedDict()
        self._generation = 0  # bumped whenever entries are dropped (see validate)

    @classmethod
    def from_config(cls, store: Store, config: ServeConfig) -> IdentityService:
        """The controller's identity service, with the limits of `config`."""
        return cls(
            store,
            config.token_ttl,
            cache_size=config.token_cache_size,
            limits=LoginLimits(
                failure_attempts=config.lockout_failure_attempts,
                lockout_duration=config.lockout_duration,
                failures_per_address=config.login_failures_per_address,
                address_window=config.login_failures_window,
            ),
            purge_interval=config.token_purge_interval,
        )

    async def find_user(self, user: dict) -> dict | None:
        """The user an auth request names by `id` or `name` (None: unknown or malformed)."""
        if "id" in user:
            ref = user["id"]
            return await repo.get_user(self.store, ref) if isinstance(ref, str) else None
        if "name" in user:
            ref = user["name"]
            return await repo.user_by_name(self.store, ref) if isinstance(ref, str) else None
        return None

    async def find_project(self, project: dict) -> dict | None:
        """The project a scope names by `id` or `name` (None: unknown or malformed)."""
        if "id" in project:
            ref = project["id"]
            return await repo.get_project(self.store, ref) if isinstance(ref, str) else None
        if "name" in project:
            ref = project["name"]
            return await repo.project_by_name(self.store, ref) if isinstance(ref, str) else None
        return None

    async def roles_for(self, user_id: str, project_id: str) -> list[dict[str, str]]:
        return await repo.roles_for(self.store, user_id, project_id)

    async def authenticate(
        self,
        user_ref: dict,
        password: str,
        project_ref: dict | None,
        address: str | None = None,
    ) -> tuple[str, TokenInfo]:
        """A token for a password login from `address` (the client's socket peer).

        TooManyAttempts if that address failed too often lately; AccountLocked if the user
        is locked out (checked before the password, as Keystone does). Every failure counts
        against the address, a wrong password also against the user; the right password
        resets the user's count."""
        limits = self.limits
        async with limits.address_turn(address):
            retry_after = limits.address_retry_after(address)
            if retry_after is not None:
                raise TooManyAttempts(retry_after)
            try:
                user = await self._check_password(user_ref, password)
            except AuthFailed:
                limits.address_failed(address)
                if limits.address_retry_after(address) is not None:  # once: later ones wait
                    log.warning("too many failed logins from %s: refused for a while", address)
                raise
        if project_ref is None:
            if not user["default_project_id"]:
                raise AuthFailed("An unscoped token was requested but no project is set.")
            project_ref = {"id": user["default_project_id"]}
        project, roles = await self._scope(user, project_ref)
        return await self._issue(user, project, roles)

    async def _check_password(self, user_ref: dict, password: str) -> dict[str, Any]:
        """The enabled user `user_ref` names if `password` is theirs; AuthFailed if not."""
        user = await self.find_user(user_ref)
        if user is None:
            raise AuthFailed(NOT_AUTHENTICATED)
        limits = self.limits
        async with limits.user_turn(user["id"]):
            if limits.is_locked(user["id"]):
                raise AccountLocked(user["id"])
            if not await passwords.check_async(password, user["password_hash"]):
                limits.user_failed(user["id"])
                if limits.is_locked(user["id"]):  # once: later attempts are refused above
                    log.warning(
                        "user %s (%s) locked out after failed logins", user["id"], user["name"]
                    )
                raise AuthFailed(NOT_AUTHENTICATED)
        if not user["enabled"]:
            raise AuthFailed(NOT_AUTHENTICATED)
        limits.reset_user(user["id"])
        return user

    async def rescope(self, token: str, project_ref: dict | None) -> tuple[str, TokenInfo]:
        """Keystone's token method: a new token for the user of `token`, scoped to
        `project_ref` (None: the token's own project), where the user must hold a role.

        The original is read afresh (not from the validation cache), so a token revoked a
        moment ago cannot mint another. The new token never outlives the original (Keystone
        keeps the expiry, so rescoping cannot extend a login) and carries the original's
        audit id, or its chain's, as its second audit id."""
        try:
            original = await self._load(token_hash(token))
        except AuthFailed:
            raise AuthFailed(NOT_AUTHENTICATED) from None
        if original.expires_at <= now_utc():
            raise AuthFailed(NOT_AUTHENTICATED)
        user = await repo.get_user(self.store, original.user_id)
        if user is None or not user["enabled"]:
            raise AuthFailed(NOT_AUTHENTICATED)
        project, roles = await self._scope(user, project_ref or {"id": original.project_id})
        methods = tuple(dict.fromkeys(("token", *original.methods)))
        return await self._issue(
            user,
            project,
            roles,
            expires_at=original.expires_at,
            methods=methods,
            parent_audit_id=original.parent_audit_id or original.audit_id,
        )

    async def _scope(
        self, user: dict[str, Any], project_ref: dict
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The enabled project `project_ref` names and the user's roles there (AuthFailed if
        there is no such project or the user holds no role on it)."""
        project = await self.find_project(project_ref)
        if project is None or not project["enabled"]:
            raise AuthFailed(NOT_AUTHENTICATED)
        roles = await self.roles_for(user["id"], project["id"])
        if not roles:
            raise AuthFailed(f"User {user['id']} has no access to project {project['id']}")
        return project, roles

    async def _issue(
        self,
        user: dict,
        project: dict,
        roles: list[dict[str, str]],
        *,
        expires_at: datetime | None = None,
        methods: tuple[str, ...] = ("password",),
        parent_audit_id: str | None = None,
    ) -> tuple[str, TokenInfo]:
        """Store and cache a new token; it expires after `token_ttl`, or at `expires_at` if
        that is sooner."""
        token = "mn-" + secrets.token_urlsafe(32)
        issued = now_utc()
        expires = issued + timedelta(seconds=self.token_ttl)
        if expires_at is not None and expires_at < expires:
            expires = expires_at
        info = TokenInfo(
            user_id=user["id"],
            user_name=user["name"],
            project_id=project["id"],
            project_name=project["name"],
            roles=roles,
            issued_at=issued,
            expires_at=expires,
            audit_id=base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            methods=methods,
            parent_audit_id=parent_audit_id,
        )
        await repo.insert_token(
            self.store,
            token_hash=token_hash(token),
            user_id=info.user_id,
            project_id=info.project_id,
            issued_at=iso(info.issued_at),
            expires_at=iso(info.expires_at),
            audit_id=info.audit_id,
            methods=info.methods,
            parent_audit_id=info.parent_audit_id,
        )
        self._remember(token_hash(token), info)
        return token, info

    def _remember(self, key: str, info: TokenInfo) -> None:
        """Cache a validation, dropping the oldest beyond `cache_size` (no cache at all
        with a size or a TTL of 0)."""
        if not self.cache_size or self.cache_ttl <= 0:
            return
        self._cache.pop(key, None)
        self._cache[key] = (info, time.monotonic())
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def validate(self, token: str) -> TokenInfo:
        """The token's current identity; AuthFailed if it is invalid.

        A validation is cached for `cache_ttl` seconds only: after that the token, the user's
        and the project's enabled flags and the roles are read again, so a role removal or a
        disable done behind our back (another process, a direct SQL edit) takes effect within
        that delay. The identity routes also drop the affected entries at once."""
        key = token_hash(token)
        entry = self._cache.get(key)
        if entry is None or time.monotonic() - entry[1] >= self.cache_ttl:
            self._cache.pop(key, None)
            generation = self._generation
            info = await self._load(key)
            if generation == self._generation:  # else what we read may predate the change
                self._remember(key, info)
        else:
            info = entry[0]
        if info.expires_at <= now_utc():
            self._cache.pop(key, None)
            raise AuthFailed(NOT_AUTHENTICATED)
        return info

    async def _load(self, key: str) -> TokenInfo:
        row = await repo.token_identity(self.store, key)
        if row is None or not row["user_enabled"] or not row["project_enabled"]:
            raise AuthFailed(NOT_AUTHENTICATED)
        roles = await self.roles_for(row["user_id"], row["project_id"])
        info = TokenInfo(
            user_id=row["user_id"],
            user_name=row["user_name"],
            project_id=row["project_id"],
            project_name=row["project_name"],
            roles=roles,
            issued_at=parse_iso(row["issued_at"]),
            expires_at=parse_iso(row["expires_at"]),
            audit_id=row["audit_id"],
            methods=tuple(row["methods"]),
            parent_audit_id=row["parent_audit_id"],
        )
        if not info.roles:
            raise AuthFailed(NOT_AUTHENTICATED)
        return info

    async def revoke(self, token: str) -> None:
        key = token_hash(token)
        await repo.delete_token(self.store, key)
        self._generation += 1
        self._cache.pop(key, None)

    async def revoke_user(self, user_id: str) -> None:
        await repo.delete_user_tokens(self.store, user_id)
        self.forget_cached(user_id=user_id)

    async def revoke_project(self, project_id: str) -> None:
        """Invalidate every token scoped to the project (disabled or deleted)."""
        await repo.delete_project_tokens(self.store, project_id)
        self.forget_cached(project_id=project_id)

    def forget_cached(self, user_id: str | None = None, project_id: str | None = None) -> None:
        """Drop the cached validations of a user's and/or a project's tokens (all if neither):
        their next validation re-reads roles and enabled flags."""
        self._generation += 1
        self._cache = OrderedDict(
            (k, (info, at))
            for k, (info, at) in self._cache.items()
            if not (
                (user_id is None or info.user_id == user_id)
                and (project_id is None or info.project_id == project_id)
            )
        )

    def forget_cached_roles(self) -> None:
        """Role assignments changed: re-read them on the next validation."""
        self.forget_cached()

    def _sweep_cache(self) -> None:
        """Drop cached validations that are stale or whose token has expired."""
        now, fresh = now_utc(), time.monotonic() - self.cache_ttl
        for key in [k for k, (i, at) in self._cache.items() if at < fresh or i.expires_at <= now]:
            del self._cache[key]

    async def purge_expired(self) -> int:
        """Delete the expired tokens (and their cached validations, and login failures that
        no longer count); how many tokens went."""
        self._sweep_cache()
        self.limits.prune()
        return await repo.purge_expired(self.store, iso(now_utc()))

    async def purge_loop(self) -> None:
        """`purge_expired` at once (tokens may have expired while the controller was down),
        then every `purge_interval` seconds (the controller runs this as a task when the
        interval is > 0)."""
        while True:
            try:
                purged = await self.purge_expired()
            except Exception:  # the loop must outlive one bad pass
                log.exception("purge of expired tokens failed")
            else:
                if purged:
                    log.info("purged %d expired token(s)", purged)
            await asyncio.sleep(self.purge_interval)


def new_id() -> str:
    return uuid.uuid4().hex


__all__ = [
    "DEFAULT_DOMAIN",
    "UTC",
    "AccountLocked",
    "AuthFailed",
    "IdentityService",
    "TokenInfo",
    "TooManyAttempts",
    "check_password",
    "hash_password",
]
