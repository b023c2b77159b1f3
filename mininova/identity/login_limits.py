"""Limits on password guessing: Keystone's per-user lockout and a per-address failure limit.

* Per user (Keystone's `[security_compliance] lockout_failure_attempts` / `lockout_duration`):
  after N wrong passwords in a row the user is refused, even with the right password, until
  `lockout_duration` seconds have passed since the last failure (0: until an admin sets a new
  password or re-enables the user). A successful login resets the count.
* Per source address: more than M failed password logins within `window` seconds and further
  password logins from that address are refused (429 with Retry-After) until the oldest
  failure leaves the window. Only the socket peer counts (never X-Forwarded-For, which a client
  can forge); an IPv6 address counts as its /64, the block one host usually holds.

State is in memory, per controller process: a restart forgets it. Attempts for one user and
for one address are serialized (`address_turn`, `user_turn`), so a burst of parallel guesses
cannot all pass the check before the first failure is counted. Times come from
`mininova.timeutil` (or the clock given), so tests move them with a fake clock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

from mininova import timeutil

# Beyond this many tracked users or addresses, forgotten first: those whose failures are old.
MAX_TRACKED = 10_000
# Seconds of float noise: a failure `window` seconds old has left the window even when the
# clock's sums round a hair short of it (t + 20 + 40 - 60 < t for about 1 % of t).
NOISE = 1e-6


@dataclass
class _UserFailures:
    count: int = 0
    last: float = 0.0


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


def address_key(address: str) -> str:
    """The key an address's failures count under: the address, or an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginLimits:
    def __init__(
        self,
        *,
        failure_attempts: int = 5,
        lockout_duration: float = 300.0,
        failures_per_address: int = 20,
        address_window: float = 60.0,
        clock: timeutil.Clock | None = None,
    ) -> None:
        """`failure_attempts` 0 disables the lockout, `failures_per_address` 0 the address
        limit; `clock` defaults to timeutil's process clock (read at each call)."""
        self.failure_attempts = failure_attempts
        self.lockout_duration = lockout_duration
        self.failures_per_address = failures_per_address
        self.address_window = address_window
        self._clock = clock
        self._users: dict[str, _UserFailures] = {}
        self._addresses: dict[str, deque[float]] = {}
        self._locks = _KeyedLocks()

    def _now(self) -> float:
        return (self._clock or timeutil.get_clock()).monotonic()

    def address_turn(self, address: str | None) -> AbstractAsyncContextManager[None]:
        """Hold while checking, verifying and counting one login from `address`: logins
        from one address run one at a time, so a parallel burst cannot overshoot the limit."""
        if address is None or not self.failures_per_address:
            return nullcontext()
        return self._locks.hold("a:" + address_key(address))

    def user_turn(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """The same for one user's password checks (taken after `address_turn`)."""
        if not self.failure_attempts:
            return nullcontext()
        return self._locks.hold("u:" + user_id)

    # ---- per user -------------------------------------------------------------------------

    def is_locked(self, user_id: str) -> bool:
        """Whether the user is locked out now (an expired lockout is reset here, as
        Keystone does)."""
        entry = self._users.get(user_id)
        if not self.failure_attempts or entry is None or entry.count < self.failure_attempts:
            return False
        if not self.lockout_duration or self._now() - entry.last < self.lockout_duration - NOISE:
            return True
        del self._users[user_id]
        return False

    def user_failed(self, user_id: str) -> None:
        if not self.failure_attempts:
            return
        entry = self._users.pop(user_id, None) or _UserFailures()
        entry.count += 1
        entry.last = self._now()
        self._users[user_id] = entry  # most recent last: `_prune` drops from the front
        self._prune()

    def reset_user(self, user_id: str) -> None:
        """A successful login, a new password or a re-enable: the count starts again."""
        self._users.pop(user_id, None)

    # ---- per address ----------------------------------------------------------------------

    def _recent(self, address: str) -> deque[float] | None:
        key = address_key(address)
        times = self._addresses.get(key)
        if times is None:
            return None
        cutoff = self._now() - self.address_window + NOISE
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._addresses[key]
            return None
        return times

    def address_retry_after(self, address: str | None) -> int | None:
        """Seconds until the address may try a password again (None: it may now)."""
        if address is None or not self.failures_per_address:
            return None
        times = self._recent(address)
        if times is None or len(times) < self.failures_per_address:
            return None
        oldest = times[len(times) - self.failures_per_address]
        remaining = oldest + self.address_window - self._now()
        return max(1, math.ceil(remaining - NOISE))  # not 41 for 40.000000001

    def address_failed(self, address: str | None) -> None:
        if address is None or not self.failures_per_address:
            return
        key = address_key(address)
        times = self._addresses.pop(key, None) or deque(maxlen=self.failures_per_address)
        times.append(self._now())
        self._addresses[key] = times
        self._prune()

    # ---- memory ---------------------------------------------------------------------------

    def prune(self) -> None:
        """Forget failures that no longer matter (the periodic token purge calls this)."""
        now = self._now()
        for key in [k for k, t in self._addresses.items() if t[-1] <= now - self.address_window]:
            del self._addresses[key]
        if self.lockout_duration:
            stale = now - self.lockout_duration
            for user_id in [u for u, e in self._users.items() if e.last <= stale]:
                del self._users[user_id]

    def _prune(self) -> None:
        if len(self._addresses) <= MAX_TRACKED and len(self._users) <= MAX_TRACKED:
            return
        self.prune()
        while len(self._addresses) > MAX_TRACKED:  # least recently failed first
            del self._addresses[next(iter(self._addresses))]
        while len(self._users) > MAX_TRACKED:
            del self._users[next(iter(self._users))]

    def tracked(self) -> tuple[int, int]:
        """(users, addresses) with failures on record."""
        return len(self._users), len(self._addresses)
