"""Network state version 3: a full state once, then only what changed in its remote groups.

Sans I/O: both sides use it. The controller's pusher (mininova/conductor/network_push.py)
keeps a version per remote group (`GroupVersions`) and sends a host whose own part did not
change a `network_members` order with each changed group's additions and removals since the
version the host has. The agent (mininova/agent/handlers.py) keeps the last state it got
(`MemberState`) and applies the order to it; what it hands its driver is always a whole
version 2 document.

A version 3 state is a version 2 document with two more keys:
`"epoch"` (the pushing controller's run) and `"remote_group_versions"` ({group id: int}).
A `network_members` order:

    {"epoch": "…", "groups": {"<group id>": {"from": 4, "version": 6,
                                             "add": ["10.0.0.9"], "remove": ["10.0.0.3"]}}}

or, for a group the controller no longer holds the host's version of,
`{"version": 6, "ips": [...]}` (the whole list). A group the agent's state does not name, a
`from` that is not the version it holds, another epoch or no state at all are refused with
`stale_state`: the controller then pushes the whole state again.

Version 4 is version 3 whose own part can change by order too: a host that got a version 4
state takes `network_members` orders that also carry

    "instances": {"put": [instance document, …], "remove": ["<uuid>", …]}

(a document as the state lists it: it replaces the one of the same uuid, or is added; a
removed uuid that is not held is ignored). A put document naming a remote group that the
state (after the order's group changes) does not hold, or an `instances` part sent to a
version 3 state, is `stale_state`. So a build landing on a host costs that host the new
guest's document, not its whole state again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

MEMBERS_VERSION = 3  # the network state version that takes `network_members` orders
INSTANCES_VERSION = 4  # ... whose orders may also carry instance documents
HELD_VERSIONS = (MEMBERS_VERSION, INSTANCES_VERSION)  # states an agent keeps for orders
COMPACT_VERSION = 2  # what drivers get
STALE_STATE = "stale_state"  # error code: push the whole state again
# Versions of a group kept for deltas; a host further behind gets the group's whole list.
KEPT_VERSIONS = 8


class StaleState(Exception):
    """The order does not apply to the state held (the controller must send it whole)."""


def delta(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """(added, removed) from `old` to `new`, each in its list's order."""
    old_set, new_set = set(old), set(new)
    return [ip for ip in new if ip not in old_set], [ip for ip in old if ip not in new_set]


class GroupVersions:
    """The controller's versions of each remote group's members, with the last few lists, so
    that a host at an older version gets only the difference."""

    def __init__(self) -> None:
        self._kept: dict[str, OrderedDict[int, list[str]]] = {}
        self._deltas: dict[tuple[str, int, int], dict[str, Any]] = {}

    def observe(self, group: str, ips: list[str]) -> int:
        """The version of `group` with members `ips` (a new version when they changed)."""
        kept = self._kept.get(group)
        if kept is None:
            self._kept[group] = OrderedDict([(1, ips)])
            return 1
        version, current = next(reversed(kept.items()))
        if current is ips or set(current) == set(ips):
            return version
        kept[version + 1] = ips
        while len(kept) > KEPT_VERSIONS:
            kept.popitem(last=False)
        return version + 1

    def current(self, group: str) -> int:
        kept = self._kept.get(group)
        return next(reversed(kept)) if kept else 0

    def change(self, group: str, since: int) -> dict[str, Any] | None:
        """What a host at version `since` of `group` needs (None: it is current). One entry
        per (group, since, version), shared by every host asking the same."""
        kept = self._kept[group]
        version = next(reversed(kept))
        if since == version:
            return None
        key = (group, since, version)
        entry = self._deltas.get(key)
        if entry is None:
            if since in kept:
                added, removed = delta(kept[since], kept[version])
                entry = {"from": since, "version": version, "add": added, "remove": removed}
            else:
                entry = {"version": version, "ips": kept[version]}
            if len(self._deltas) > 4096:
                self._deltas.clear()
            self._deltas[key] = entry
        return entry


class MemberState:
    """The agent's last version 3 state, and `network_members` orders applied to it."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None

    def replace(self, state: dict[str, Any]) -> dict[str, Any]:
        """Hold a whole state (any version); the version 2 document for the driver."""
        if state.get("version") in HELD_VERSIONS:
            check_versions(state)
            self.state = state
        else:
            self.state = None  # an older controller: it sends whole states only
        return for_driver(state)

    def apply(self, order: dict[str, Any]) -> dict[str, Any]:
        """Apply a `network_members` order (StaleState when it does not fit; ValueError when
        malformed, nothing applied either way); the version 2 document for the driver."""
        state = self.state
        if state is None:
            raise StaleState("no version 3 state held")
        if order.get("epoch") != state.get("epoch"):
            raise StaleState("the state is from another controller run")
        groups = order.get("groups")
        if not isinstance(groups, dict):
            raise ValueError("groups must be an object")
        versions = dict(state["remote_group_versions"])
        members = dict(state["remote_groups"])
        for group, change in groups.items():
            if not isinstance(change, dict) or type(change.get("version")) is not int:
                raise ValueError(f"group {group!r}: an object with an integer version")
            if group not in versions:
                raise StaleState(f"group {group!r} is not in the state held")
            if "ips" in change:
                members[group] = _addresses(change["ips"], group)
            else:
                if change.get("from") != versions[group]:
                    raise StaleState(
                        f"group {group!r} is at version {versions[group]}, "
                        f"not {change.get('from')!r}"
                    )
                gone = set(_addresses(change.get("remove"), group))
                kept = [ip for ip in members[group] if ip not in gone]
                present = set(kept)
                kept += [ip for ip in _addresses(change.get("add"), group) if ip not in present]
                members[group] = kept
            versions[group] = change["version"]
        instances = state["instances"]
        if "instances" in order:
            if state["version"] < INSTANCES_VERSION:
                raise StaleState("the state held takes no instance documents (version 3)")
            instances = _patched(instances, order["instances"], members)
        self.state = {
            **state,
            "remote_groups": members,
            "remote_group_versions": versions,
            "instances": instances,
        }
        return for_driver(self.state)


def _patched(
    instances: list[dict[str, Any]], change: Any, members: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """`instances` with an order's `instances` part applied (ValueError when malformed,
    StaleState when a document names a remote group `members` does not hold)."""
    if not isinstance(change, dict):
        raise ValueError("instances must be an object")
    put, remove = change.get("put", []), change.get("remove", [])
    if not isinstance(remove, list) or not all(isinstance(u, str) for u in remove):
        raise ValueError("instances.remove must be a list of uuids")
    if not isinstance(put, list):
        raise ValueError("instances.put must be a list of instance documents")
    for doc in put:
        if not isinstance(doc, dict) or not isinstance(doc.get("uuid"), str):
            raise ValueError("each instances.put entry must be an object with a uuid")
        rules = doc.get("ingress"), doc.get("egress")
        if not all(isinstance(r, list) and all(isinstance(x, dict) for x in r) for r in rules):
            raise ValueError(f"instance {doc['uuid']}: ingress and egress must be lists of rules")
        for rule in rules[0] + rules[1]:  # type: ignore[operator]
            remote = rule.get("remote_group_id")
            if remote and remote not in members:
                raise StaleState(f"instance {doc['uuid']} names remote group {remote!r}")
    gone = set(remove)
    replaced = {doc["uuid"]: doc for doc in put}
    out = [replaced.pop(d["uuid"], d) for d in instances if d["uuid"] not in gone]
    return out + list(replaced.values())


def for_driver(state: dict[str, Any]) -> dict[str, Any]:
    """A version 3 or 4 state as the version 2 document drivers take (others as they are)."""
    if state.get("version") not in HELD_VERSIONS:
        return state
    doc = {k: v for k, v in state.items() if k not in ("epoch", "remote_group_versions")}
    doc["version"] = COMPACT_VERSION
    return doc


def check_versions(state: dict[str, Any]) -> None:
    """ValueError unless a version 3 or 4 state names a version for each remote group."""
    groups, versions = state.get("remote_groups"), state.get("remote_group_versions")
    if not isinstance(state.get("epoch"), str):
        raise ValueError("a version 3 state needs an epoch (string)")
    if not isinstance(groups, dict) or not isinstance(versions, dict):
        raise ValueError("a version 3 state needs remote_groups and remote_group_versions")
    for group in groups:
        if type(versions.get(group)) is not int:
            raise ValueError(f"remote group {group!r} has no integer version")


def _addresses(value: Any, group: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(ip, str) for ip in value):
        raise ValueError(f"group {group!r}: addresses must be a list of strings")
    return value
