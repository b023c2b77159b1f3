"""Short-lived capabilities: what an agent may do on the controller's HTTP API for one order.

Agents never hold Keystone tokens. An order that needs the API (download image X, upload the
snapshot into image Y) carries a capability for exactly one method and path, usable only by
the host the order went to (it must also present its host credential), until the order ends
or the capability expires. Only hashes are kept, in memory: a controller restart ends every
order anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from mininova import timeutil

PREFIX = "mnc_"


class CapabilityDenied(Exception):
    """A capability that does not allow this request; `status` is 401 or 403."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Grant:
    host: str
    method: str
    path: str
    expires: float  # on the registry's monotonic clock


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Capabilities:
    """The controller's registry of live capabilities."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._grants: dict[str, Grant] = {}
        self._clock = clock or timeutil.monotonic  # the process clock unless a test injects one

    def grant(self, host: str, method: str, path: str, ttl: float) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        self._grants[_digest(token)] = Grant(host, method.upper(), path, self._clock() + ttl)
        return token

    def revoke(self, token: str) -> None:
        self._grants.pop(_digest(token), None)

    def check(self, token: str, host: str, method: str, path: str) -> Grant:
        """The grant if `host` may send `method path` with this capability, else raise."""
        now = self._clock()
        self._grants = {k: g for k, g in self._grants.items() if g.expires > now}
        grant = self._grants.get(_digest(token))
        if grant is None:
            raise CapabilityDenied(401, "capability unknown, expired or revoked")
        if not hmac.compare_digest(grant.host, host):
            raise CapabilityDenied(403, f"capability was issued to another host, not {host}")
        if grant.method != method.upper() or grant.path != path:
            raise CapabilityDenied(
                403, f"capability allows {grant.method} {grant.path}, not {method} {path}"
            )
        return grant

    def __len__(self) -> int:
        return len(self._grants)
