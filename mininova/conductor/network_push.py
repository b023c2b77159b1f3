"""Network state pushes (`network_sync`), in rounds.

A change (a build landing, a rule, a floating IP, a delete) marks the hosts it concerns. The
pusher takes every marked host at once and pushes each its whole desired state
(mininova/network/hoststate.py). Each remote group's member addresses are read once per round
for all of the round's hosts. A project's default group names every instance of the project,
so one boot changes every host of the project; reading the group's members once per host would
cost a 1,000-host cloud 1,000 reads per boot. Marks that arrive during a round go to the next
one, which starts at least `spacing` seconds after the last one ended, and at least as long
after it as it took: when rounds grow long (a thousand hosts), pushing stays at most about
half of the controller's time and the API keeps the rest.

Why a round's single read is enough: a change is committed before its hosts are marked, and a
round takes its hosts before it reads anything. So every change whose mark the round took is
in what the round reads, and a change committed after that read marks its hosts for the next
round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from mininova.agenthub import HostUnavailable
from mininova.network.hoststate import RemoteGroupReads, desired_state
from mininova.protocol.core import ProtocolError

if TYPE_CHECKING:
    from mininova.store import Store

log = logging.getLogger(__name__)

# Rounds start at least this far apart (s): a burst of boots coalesces into few pushes.
SPACING = 0.5
# Hosts of one round pushed at the same time (each waits for its agent's answer).
CONCURRENCY = 16


class PushHub(Protocol):
    def network_state_version(self, host: str) -> int: ...

    async def call(
        self, host: str, method: str, params: dict | None = None, timeout: float = 60.0
    ) -> object: ...


class NetworkPusher:
    def __init__(self, store: Store, hub: PushHub, spacing: float = SPACING) -> None:
        self.store = store
        self.hub = hub
        self.spacing = spacing
        self._marked: dict[str, list[asyncio.Future[None]]] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def push(self, hosts: Iterable[str]) -> None:
        """Push the state of `hosts` as it is from now on; returns when each was pushed (or
        its push failed: failures are logged, never raised)."""
        loop = asyncio.get_running_loop()
        waiting = []
        for host in sorted({h for h in hosts if h}):
            done: asyncio.Future[None] = loop.create_future()
            self._marked.setdefault(host, []).append(done)
            waiting.append(done)
        if not waiting:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(self._wake), name="network-pusher")
        await asyncio.gather(*(asyncio.shield(w) for w in waiting))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            batch, self._marked = self._marked, {}
            started = time.monotonic()  # real time: a pacing, not an expiry a test fakes
            try:
                await self._round(batch)
            except Exception:  # a round must never stop the pusher
                log.exception("network push round failed")
            finally:
                for waiters in batch.values():
                    for done in waiters:
                        if not done.done():
                            done.set_result(None)
            await asyncio.sleep(max(self.spacing, time.monotonic() - started))

    async def _round(self, batch: dict[str, list[asyncio.Future[None]]]) -> None:
        remote_ips = RemoteGroupReads()  # this round's read of each remote group
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(host: str) -> None:
            async with slots:
                await self._push_one(host, remote_ips)
            for done in batch[host]:
                if not done.done():
                    done.set_result(None)

        await asyncio.gather(*(one(h) for h in sorted(batch)))

    async def _push_one(self, host: str, remote_ips: RemoteGroupReads) -> None:
        try:
            version = self.hub.network_state_version(host)
            state = await desired_state(self.store, host, version, remote_ips=remote_ips)
            result = await self.hub.call(host, "network_sync", {"state": state}, timeout=60)
        except HostUnavailable:
            return  # pushed again when the agent (re)connects
        except ProtocolError as exc:
            log.warning("network sync of %s failed: %s", host, exc.message)
            return
        except Exception:  # a push must never take the conductor down
            log.exception("network sync of %s failed", host)
            return
        errors = result.get("errors") if isinstance(result, dict) else None
        if errors:
            log.warning("network sync of %s: %s", host, "; ".join(map(str, errors)))
        else:
            log.info("network sync of %s: %d instance(s)", host, len(state["instances"]))
