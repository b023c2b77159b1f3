"""Network state pushes (`network_sync`), in rounds.

A change (a build landing, a rule, a floating IP, a delete) marks the hosts it concerns. The
pusher takes every marked host at once and pushes each its whole desired state
(mininova/network/hoststate.py). A remote group's member addresses are shared by all of a
round's hosts, and kept from round to round: a round reads only the instances its marks name
(`RemoteGroupReads.refresh`), not the groups. A project's default group names every instance
of the project, so one boot changes every host of the project; reading the group's members
once per host would cost a 1,000-host cloud 1,000 reads per boot, and reading it once per
round would cost a round a read of every instance of the project. A change told without its
instances (only a project, or a whole mark), or a security group written, reads the groups
again. Marks that arrive during a round go to the next
one, which starts at least `spacing` seconds after the last one ended, and at least as long
after it as it took: when rounds grow long (a thousand hosts), pushing stays at most about
half of the controller's time and the API keeps the rest.

Why a round's single read is enough: a change is committed before its hosts are marked, and a
round takes its hosts before it reads anything. So every change whose mark the round took is
in what the round reads, and a change committed after that read marks its hosts for the next
round.

When an instance of a project came, went or moved elsewhere (`push(projects=...)`), the
members of the project's groups may have changed. The hosts concerned are those whose last
pushed state names one of those groups as a remote group: the pusher keeps which hosts those
are (`referencing`), so a boot reads no list of the project's hosts. Agents that take network
state version 3 (mininova/protocol/network_members.py) get their whole state once; after that,
such a host gets a `network_members` order with just the additions and removals, and nothing
at all when its groups did not change. Its own part (its instances, their rules, floating IPs)
is not worked out again for that. Older agents get their whole state. Any failure, or an agent
that answers `stale_state`, drops what the pusher knows of the host, and its next push is
whole.

A change that concerns given instances only (`push(instances=...)`: a build landing, a guest
deleted or moved) marks its hosts with those uuids. A version 4 host that holds a state from
this run then gets the same order with just those instances' documents put or removed
(worked out from a read of those instances only); the pusher keeps the documents each such
host holds to tell what changed. A document naming a remote group the host does not hold, an
older agent, or any whole mark sends the whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from mininova.agenthub import HostUnavailable
from mininova.network.hoststate import (
    RemoteGroupReads,
    desired_state,
    implicit_default_id,
    instance_docs,
    remote_groups_of,
)
from mininova.protocol.core import ProtocolError
from mininova.protocol.network_members import (
    INSTANCES_VERSION,
    MEMBERS_VERSION,
    STALE_STATE,
    GroupVersions,
)
from mininova.store import host_network

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
        self.epoch = secrets.token_hex(8)  # this run's versions mean nothing to another run
        self.groups = GroupVersions()
        # host -> {remote group: version} the host holds, for hosts that got a version 3
        # state from this run (their groups can be updated by `network_members`)
        self.held: dict[str, dict[str, int]] = {}
        # host -> {uuid: document} of the version 4 hosts in `held`: their own part
        self.docs: dict[str, dict[str, dict]] = {}
        # remote group -> the hosts whose last pushed state names it (any state version)
        self.referencing: dict[str, set[str]] = {}
        self._named: dict[str, frozenset[str]] = {}  # host -> the remote groups it names
        # host -> None (its whole own part may have changed) or the uuids of its instances that
        # may have (empty: only the members of the remote groups it enforces)
        self._marked: dict[str, set[str] | None] = {}
        self._projects: set[str] = set()  # projects whose groups' members may have changed
        # Remote groups' members, kept from round to round: a round reads only the instances
        # that changed (`_changed`); one told only that a project changed, a whole mark or a
        # security group written reads the groups again.
        self.members = RemoteGroupReads()
        self._changed: set[str] = set()
        self._reread = False
        self._groups_written = store.generation("security_groups")
        # done when the round that takes the marks made so far has ended (one future per
        # round, not one per host: a boot can concern every host of its project)
        self._next_round: asyncio.Future[None] | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def push(
        self, hosts: Iterable[str], projects: Iterable[str] = (), instances: Iterable[str] = ()
    ) -> None:
        """Push the state of `hosts` as it is from now on, and to the hosts that enforce a
        group of `projects` what changed in its members; returns when each was pushed (or
        its push failed: failures are logged, never raised). `instances`: the change
        concerns only these instances of `hosts` (none given: anything on them)."""
        loop = asyncio.get_running_loop()
        only = set(instances)
        for host in hosts:
            if host:
                self._mark(host, only or None)
        named = {p for p in projects if p}
        self._projects |= named
        self._changed |= only  # their groups' members are read again in the next round
        if named and not only:
            self._reread = True  # which of the projects' instances changed is not known
        if not self._marked and not self._projects:
            return
        if self._next_round is None:
            self._next_round = loop.create_future()
        round_done = self._next_round
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(self._wake), name="network-pusher")
        await asyncio.shield(round_done)

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
            projects, self._projects = self._projects, set()
            changed, self._changed = self._changed, set()
            reread, self._reread = self._reread, False
            round_done, self._next_round = self._next_round, None
            started = time.monotonic()  # real time: a pacing, not an expiry a test fakes
            try:
                await self._round(batch, projects, changed, reread)
            except Exception:  # a round must never stop the pusher
                log.exception("network push round failed")
            finally:
                if round_done is not None and not round_done.done():
                    round_done.set_result(None)
            await asyncio.sleep(max(self.spacing, time.monotonic() - started))

    def _mark(self, host: str, uuids: set[str] | None) -> None:
        if uuids is None:
            self._marked[host] = None
        elif host not in self._marked:
            self._marked[host] = set(uuids)
        elif (marked := self._marked[host]) is not None:
            marked |= uuids

    def _incremental(self, host: str, uuids: set[str]) -> bool:
        """Whether an order can bring `host` up to date (`uuids`: its changed instances)."""
        if host not in self.held:
            return False
        version = self.hub.network_state_version(host)
        if uuids:
            return version >= INSTANCES_VERSION and host in self.docs
        return version >= MEMBERS_VERSION

    async def _hosts_naming(self, projects: set[str]) -> set[str]:
        """The hosts whose last pushed state names a group of `projects`."""
        if not projects or not self.referencing:
            return set()
        groups = await host_network.groups_of_projects(self.store, sorted(projects))
        groups += [implicit_default_id(p) for p in projects]  # the default before its row
        return {h for g in groups for h in self.referencing.get(g, ())}

    def _names(self, host: str, groups: Iterable[str]) -> None:
        """Record the remote groups the state just pushed to `host` names."""
        named = frozenset(groups)
        before = self._named.get(host, frozenset())
        for group in before - named:
            hosts = self.referencing.get(group)
            if hosts is not None:
                hosts.discard(host)
                if not hosts:
                    del self.referencing[group]
        for group in named - before:
            self.referencing.setdefault(group, set()).add(host)
        self._named[host] = named

    async def _round(
        self,
        batch: dict[str, set[str] | None],
        projects: set[str],
        changed: set[str],
        reread: bool,
    ) -> None:
        for host in await self._hosts_naming(projects):
            batch.setdefault(host, set())
        remote_ips = self.members
        groups_written = self.store.generation("security_groups")
        if reread or groups_written != self._groups_written or None in batch.values():
            remote_ips.forget()
            self._groups_written = groups_written
        else:
            await remote_ips.refresh(self.store, sorted(changed))
        slots = asyncio.Semaphore(CONCURRENCY)
        by_order = {
            h: uuids
            for h, uuids in batch.items()
            if uuids is not None and self._incremental(h, uuids)
        }
        # one read of every group those hosts hold, before any whole state reads more
        await remote_ips.read(self.store, sorted({g for h in by_order for g in self.held[h]}))
        # and one read of the changed instances' documents for all of them
        wanted = {h: uuids for h, uuids in by_order.items() if uuids}
        try:
            docs_now = await instance_docs(self.store, wanted, remote_ips) if wanted else {}
        except Exception as exc:
            for host in wanted:
                self.held.pop(host)  # its next push is whole
                self.docs.pop(host)
                del by_order[host]
                batch.pop(host)
                self._failed(host, "network instances update", exc)
            docs_now = {}

        async def one(host: str) -> None:
            async with slots:
                if host in by_order:
                    await self._push_members(
                        host, remote_ips, by_order[host], docs_now.get(host, {})
                    )
                else:
                    await self._push_one(host, remote_ips)

        await asyncio.gather(*(one(h) for h in sorted(batch)))

    async def _push_one(self, host: str, remote_ips: RemoteGroupReads) -> None:
        self.held.pop(host, None)  # until the agent has taken this state
        self.docs.pop(host, None)
        try:
            version = self.hub.network_state_version(host)
            state = await desired_state(self.store, host, version, remote_ips=remote_ips)
            self._names(host, _remote_groups(state))
            if version >= MEMBERS_VERSION:
                held = {g: self.groups.observe(g, ips) for g, ips in state["remote_groups"].items()}
                state["epoch"] = self.epoch
                state["remote_group_versions"] = held
            result = await self.hub.call(host, "network_sync", {"state": state}, timeout=60)
        except Exception as exc:
            self._failed(host, "network sync", exc)
            return
        if version >= MEMBERS_VERSION:
            self.held[host] = held
        if version >= INSTANCES_VERSION:
            self.docs[host] = {doc["uuid"]: doc for doc in state["instances"]}
        self._log_result(host, "network sync", result, f"{len(state['instances'])} instance(s)")

    async def _push_members(
        self,
        host: str,
        remote_ips: RemoteGroupReads,
        uuids: set[str],
        now: dict[str, dict],
    ) -> None:
        """Send `host` what changed in the groups it holds and, version 4, in the documents
        of `uuids` (`now`: the documents of those still live on it, read for the round); its
        whole state instead when a document names a group it does not hold."""
        held = self.held[host]
        put: list[dict] = []
        remove: list[str] = []
        if uuids:
            docs = self.docs[host]
            if any(g not in held for doc in now.values() for g in remote_groups_of(doc)):
                await self._push_one(host, remote_ips)
                return
            put = [doc for uuid, doc in now.items() if docs.get(uuid) != doc]
            remove = [uuid for uuid in sorted(uuids) if uuid in docs and uuid not in now]
        changes = {}
        for group, since in held.items():
            self.groups.observe(group, remote_ips.ips[group])
            change = self.groups.change(group, since)
            if change is not None:
                changes[group] = change
        if not changes and not put and not remove:
            return  # nothing this host enforces changed
        order: dict = {"epoch": self.epoch, "groups": changes}
        if put or remove:
            order["instances"] = {"put": put, "remove": remove}
        self.held.pop(host)  # until the agent has taken the order
        docs = self.docs.pop(host, None)
        try:
            result = await self.hub.call(host, "network_members", order, timeout=60)
        except Exception as exc:
            self._failed(host, "network members update", exc)
            return
        self.held[host] = {**held, **{g: c["version"] for g, c in changes.items()}}
        if docs is not None:
            for uuid in remove:
                docs.pop(uuid, None)
            docs.update((doc["uuid"], doc) for doc in put)
            self.docs[host] = docs
        summary = f"{len(changes)} group(s), {len(put)} put, {len(remove)} removed"
        self._log_result(host, "network members update", result, summary)

    def _forget(self, host: str) -> None:
        """Drop what this run knows of a host without a link: the next change of a group it
        named does not try it again, and a host that never comes back costs nothing."""
        self._names(host, ())
        self._named.pop(host, None)
        self.held.pop(host, None)
        self.docs.pop(host, None)

    def _failed(self, host: str, what: str, exc: Exception) -> None:
        """Log a failed push; a host whose agent holds a stale state is pushed whole soon."""
        if isinstance(exc, HostUnavailable):
            self._forget(host)  # pushed whole again when the agent (re)connects
            return
        if isinstance(exc, ProtocolError):
            if exc.code == STALE_STATE:
                log.info("%s of %s: %s; pushing the whole state", what, host, exc.message)
                self._mark(host, None)
                if self._wake is not None:
                    self._wake.set()  # the next round
                return
            log.warning("%s of %s failed: %s", what, host, exc.message)
            return
        log.error("%s of %s failed", what, host, exc_info=exc)  # never takes the conductor down

    @staticmethod
    def _log_result(host: str, what: str, result: object, summary: str) -> None:
        errors = result.get("errors") if isinstance(result, dict) else None
        if errors:
            log.warning("%s of %s: %s", what, host, "; ".join(map(str, errors)))
        else:
            log.info("%s of %s: %s", what, host, summary)


def _remote_groups(state: dict) -> Iterable[str]:
    """The remote groups a desired state names (version 1 lists them only in its rules)."""
    if "remote_groups" in state:
        return state["remote_groups"].keys()
    return {g for doc in state["instances"] for g in remote_groups_of(doc)}
