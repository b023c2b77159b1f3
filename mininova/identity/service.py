"""Identity logic: password hashing, token issue/validate/revoke, role look-ups."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mininova.store import Store
from mininova.store import identity as repo
from mininova.timeutil import iso, now_utc, parse_iso

DEFAULT_DOMAIN = {"id": "default", "name": "Default"}
# How long a token validation is reused before roles and enabled flags are read again (s).
TOKEN_CACHE_TTL = 2.0


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


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


class IdentityService:
    def __init__(self, store: Store, token_ttl: int = 3600) -> None:
        self.store = store
        self.token_ttl = token_ttl
        self.cache_ttl = TOKEN_CACHE_TTL
        # token hash -> (validation, time.monotonic() when it was read)
        self._cache: dict[str, tuple[TokenInfo, float]] = {}
        self._generation = 0  # bumped whenever entries are dropped (see validate)

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
        self, user_ref: dict, password: str, project_ref: dict | None
    ) -> tuple[str, TokenInfo]:
        user = await self.find_user(user_ref)
        if (
            user is None
            or not user["enabled"]
            or not check_password(password, user["password_hash"])
        ):
            raise AuthFailed(NOT_AUTHENTICATED)
        if project_ref is None:
            if not user["default_project_id"]:
                raise AuthFailed("An unscoped token was requested but no project is set.")
            project_ref = {"id": user["default_project_id"]}
        project, roles = await self._scope(user, project_ref)
        return await self._issue(user, project, roles)

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
        self._cache[token_hash(token)] = (info, time.monotonic())
        return token, info

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
                self._cache[key] = (info, time.monotonic())
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
        self._cache = {
            k: (info, at)
            for k, (info, at) in self._cache.items()
            if not (
                (user_id is None or info.user_id == user_id)
                and (project_id is None or info.project_id == project_id)
            )
        }

    def forget_cached_roles(self) -> None:
        """Role assignments changed: re-read them on the next validation."""
        self.forget_cached()

    async def purge_expired(self) -> int:
        """Delete the expired tokens; how many went."""
        return await repo.purge_expired(self.store, iso(now_utc()))


def new_id() -> str:
    return uuid.uuid4().hex


__all__ = ["DEFAULT_DOMAIN", "AuthFailed", "IdentityService", "TokenInfo", "UTC"]
