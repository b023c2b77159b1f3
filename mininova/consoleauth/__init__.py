"""nova-consoleauth: issues and checks console access tokens.

Tokens are `secrets.token_urlsafe(32)` (256 random bits). Only their sha256 hash is stored, in
`console_tokens`; each is bound to one instance, expires after `console_token_ttl` seconds and
may be single-use. `revoke_instance(uuid)` drops every token of an instance (cast by the
conductor when the instance is deleted or moves to another host).

Bus methods (`await bus.call("consoleauth", METHOD, **params)`; `client.ConsoleAuthClient`):

* `authorize(instance_uuid, console_type="novnc", ttl=None, single_use=None)`
  -> `{"token", "expires_at", "instance_uuid", "console_type"}`
* `check(token, instance_uuid=None, consume=True)`
  -> `{"instance_uuid", "project_id", "host", "name", "console_type", "expires_at"}`; raises ConsoleAuthError
  (with a machine-readable `reason`) and logs the reason. `consume=False` peeks without using
  up a single-use token (for the console page's pre-check).
* `revoke(token)` -> number of tokens removed
* `revoke_instance(uuid)` -> number of tokens removed
* `purge_expired()` -> number of tokens removed
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mininova.config import ServeConfig
from mininova.store import Store, console_tokens, instances
from mininova.timeutil import iso, now_utc, parse_iso

log = logging.getLogger(__name__)

CONSOLE_TYPES = ("novnc",)
# vm_states whose guest has a live VNC server.
CONSOLE_VM_STATES = ("active", "paused", "rescued")
MAX_TOKEN_LENGTH = 256

# Refusal reasons (stable strings: the proxy and the console page show them).
INVALID = "invalid"
EXPIRED = "expired"
USED = "used"
WRONG_INSTANCE = "wrong_instance"
INSTANCE_GONE = "instance_deleted"
NOT_RUNNING = "instance_not_running"

MESSAGES = {
    INVALID: "The console token is invalid.",
    EXPIRED: "The console token has expired; request a new console URL.",
    USED: "The console token was already used; request a new console URL.",
    WRONG_INSTANCE: "The console token belongs to another instance.",
    INSTANCE_GONE: "The instance of this console no longer exists.",
    NOT_RUNNING: "The instance is not running.",
}


class ConsoleAuthError(Exception):
    """A token was refused. `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(MESSAGES.get(reason, reason) + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason, self.reason)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _short(token_hash: str) -> str:
    """A log-safe handle for a token: a prefix of its hash, never the token itself."""
    return token_hash[:12]


class ConsoleAuth:
    def __init__(
        self, store: Store, config: ServeConfig, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock or now_utc  # timeutil's process clock unless one is injected

    async def handle(self, method: str, params: dict[str, Any]) -> Any:
        handler = {
            "authorize": self.authorize,
            "check": self.check,
            "revoke": self.revoke,
            "revoke_instance": self.revoke_instance,
            "purge_expired": self.purge_expired,
        }.get(method)
        if handler is None:
            raise LookupError(f"consoleauth has no method {method!r}")
        return await handler(**params)

    async def authorize(
        self,
        instance_uuid: str,
        console_type: str = "novnc",
        ttl: float | None = None,
        single_use: bool | None = None,
    ) -> dict[str, Any]:
        if console_type not in CONSOLE_TYPES:
            raise ValueError(f"unsupported console type {console_type!r}")
        ttl = float(self.config.console_token_ttl if ttl is None else ttl)
        if single_use is None:
            single_use = bool(self.config.console_single_use)
        await self.purge_expired()
        token = new_token()
        token_hash = hash_token(token)
        now = self.clock()
        expires = now + timedelta(seconds=ttl)
        await console_tokens.create(
            self.store, token_hash, instance_uuid, console_type, iso(expires), single_use, iso(now)
        )
        log.info(
            "console token %s issued for instance %s (%s, ttl %.0fs%s)",
            _short(token_hash),
            instance_uuid,
            console_type,
            ttl,
            ", single-use" if single_use else "",
        )
        return {
            "token": token,
            "expires_at": iso(expires),
            "instance_uuid": instance_uuid,
            "console_type": console_type,
        }

    def _refuse(self, reason: str, token_hash: str, detail: str = "") -> ConsoleAuthError:
        log.warning(
            "console token %s refused: %s%s",
            _short(token_hash) if token_hash else "-",
            reason,
            f" ({detail})" if detail else "",
        )
        return ConsoleAuthError(reason, detail)

    async def check(
        self, token: str, instance_uuid: str | None = None, consume: bool = True
    ) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise self._refuse(INVALID, "", "missing or malformed token")
        token_hash = hash_token(token)
        row = await console_tokens.get(self.store, token_hash)
        if row is None:
            raise self._refuse(INVALID, token_hash, "unknown token")
        now = self.clock()
        # scale-out seam: local clock; controllers need NTP (or use now())
        if parse_iso(row["expires_at"]) <= now:  # kept (so the page can say why) until purged
            raise self._refuse(EXPIRED, token_hash, f"expired at {row['expires_at']}")
        if row["single_use"] and row["used"]:
            raise self._refuse(USED, token_hash)
        if instance_uuid is not None and instance_uuid != row["instance_uuid"]:
            raise self._refuse(
                WRONG_INSTANCE,
                token_hash,
                f"bound to {row['instance_uuid']}, asked for {instance_uuid}",
            )
        inst = await instances.get(self.store, row["instance_uuid"], include_deleted=True)
        if inst is None or inst["deleted"] or inst["vm_state"] == "deleted":
            await self.revoke_instance(row["instance_uuid"])
            raise self._refuse(INSTANCE_GONE, token_hash, row["instance_uuid"])
        if inst["vm_state"] not in CONSOLE_VM_STATES or not inst["host"]:
            raise self._refuse(NOT_RUNNING, token_hash, f"{inst['uuid']} is {inst['vm_state']}")
        if consume and row["single_use"]:
            # scale-out seam: this guarded UPDATE keeps single use atomic across controllers
            if not await console_tokens.consume(self.store, token_hash):
                # another connection used it first
                raise self._refuse(USED, token_hash)
        return {
            "instance_uuid": inst["uuid"],
            "project_id": inst["project_id"],
            "host": inst["host"],
            "name": inst["name"],
            "console_type": row["console_type"],
            "expires_at": row["expires_at"],
            "single_use": bool(row["single_use"]),
        }

    async def revoke(self, token: str) -> int:
        return await console_tokens.delete_token(self.store, hash_token(token))

    async def revoke_instance(self, uuid: str) -> int:
        count = await console_tokens.delete_for_instance(self.store, uuid)
        if count:
            log.info("revoked %d console token(s) of instance %s", count, uuid)
        return count

    async def purge_expired(self) -> int:
        return await console_tokens.purge_expired(self.store, iso(self.clock()))
