"""A host's desired network state: the document the conductor pushes with `network_sync`.

Version 1 (docs/agent-protocol.md):

    {"version": 1, "host": "fw1",
     "instances": [{"uuid", "mac", "fixed_ips": ["192.168.122.10"],
                    "security_groups": [ids],
                    "ingress": [rule], "egress": [rule],
                    "floating_ips": [{"id", "address", "cidr", "fixed_ip"}]}]}
    rule = {"id", "security_group_id", "ethertype", "protocol", "port_range_min",
            "port_range_max", "remote_ip_prefix", "remote_group_id",
            "remote_ips": [fixed IPs of the remote group's members] or null}

Version 2 is the same document without the repeats: a rule naming a remote group carries no
`remote_ips`; the group's addresses are listed once, in a top-level
`"remote_groups": {group id: [fixed IPs]}`. A project's default group names every instance of
the project, so in version 1 a host's document grows with (its guests x the project's
instances); agents that say so in their hello (`network_state_versions`) get version 2.

An instance in no security group gets its project's `default` group; when the project has
no default group row yet, Neutron's default rules are used (all egress, ingress only from the
project's other group-less instances). A remote group's members are its live instances on any
host; an instance is a member of its own group too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from mininova.network import security_groups
from mininova.protocol.core import NETWORK_STATE_VERSIONS as VERSIONS
from mininova.protocol.network_members import COMPACT_VERSION
from mininova.store import host_network as repo

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

VERSION = 1  # the full form; VERSIONS (protocol.core) also holds 2, the compact one
# Stand-in id of a project's default group that has no row yet.
IMPLICIT_DEFAULT = "default"


def implicit_default_id(project_id: str) -> str:
    """The stand-in id of `project_id`'s default group before it has a row."""
    return f"{IMPLICIT_DEFAULT}:{project_id}"


def fixed_ips(addresses: Any) -> list[str]:
    """The fixed IPs an instance's `addresses` (as the agent reported them) name, in order."""
    out: list[str] = []
    for item in addresses if isinstance(addresses, list) else []:
        addr = item.get("addr") if isinstance(item, dict) else None
        if isinstance(addr, str) and addr and addr not in out:
            out.append(addr)
    return out


def _rule_doc(rule: Row, remote_ips: list[str] | None) -> dict[str, Any]:
    """A rule as version 1 lists it (`remote_ips` None: no remote group, or version 2)."""
    return {
        "id": rule["id"],
        "security_group_id": rule["security_group_id"],
        "ethertype": rule["ethertype"],
        "protocol": rule["protocol"],
        "port_range_min": rule["port_range_min"],
        "port_range_max": rule["port_range_max"],
        "remote_ip_prefix": rule["remote_ip_prefix"],
        "remote_group_id": rule["remote_group_id"],
        "remote_ips": remote_ips,
    }


# A member's place in its group's list: explicit members first, then (in a default group) the
# project's instances in no group, each by instance id, as a read of the group lists them.
Place = tuple[int, int]
Members = dict[str, tuple[Place, list[str]]]  # uuid -> (place, fixed IPs), members with IPs


async def _read_members(db: Executor, remote_ids: list[str]) -> tuple[dict[str, Members], dict]:
    """Each remote group's live members (any host) with their fixed IPs, by group id, and the
    project of each default group among them (with a row or a stand-in id)."""
    explicit = [g for g in remote_ids if ":" not in g]
    members = await repo.members(db, explicit)
    meta = await repo.groups(db, explicit)
    defaults = {g: meta[g]["project_id"] for g in explicit if g in meta and meta[g]["is_default"]}
    defaults |= {g: g.split(":", 1)[1] for g in remote_ids if ":" in g}
    # A default group's members include the project's instances that are in no group.
    lone = await repo.ungrouped(db, sorted(set(defaults.values())))
    out: dict[str, Members] = {}
    for g in remote_ids:
        project = defaults.get(g)
        rows = [(0, row) for row in members.get(g, [])]
        rows += [(1, row) for row in lone.get(project, [])] if project else []
        out[g] = {}
        for rank, row in rows:
            ips = fixed_ips(row["addresses"])
            if ips:
                out[g][row["uuid"]] = ((rank, row["id"]), ips)
    return out, defaults


def _listed(members: Members) -> list[str]:
    """A group's member IPs in the order a read lists them, without repeats."""
    ips: dict[str, None] = {}
    for _place, member_ips in sorted(members.values(), key=lambda entry: entry[0]):
        ips.update(dict.fromkeys(member_ips))
    return list(ips)


class RemoteGroupReads:
    """Remote groups' member IPs (`ips`, by group id), read once and shared: by a push round's
    hosts (a read awaits the database, and a second host waits for it rather than read the
    group again), and by the pusher from round to round, kept current with `refresh`."""

    def __init__(self) -> None:
        self.ips: dict[str, list[str]] = {}  # remote group id -> member IPs
        self._members: dict[str, Members] = {}
        self._default_of: dict[str, str] = {}  # default group id (or stand-in) -> its project
        self._lock = asyncio.Lock()

    async def read(self, db: Executor, remote_ids: list[str]) -> dict[str, list[str]]:
        """Read the groups of `remote_ids` not held yet; every group held, by id."""
        async with self._lock:
            missing = [g for g in remote_ids if g not in self.ips]
            if missing:
                members, defaults = await _read_members(db, missing)
                self._default_of.update(defaults)
                for g in missing:
                    self._members[g] = members[g]
                    self.ips[g] = _listed(members[g])
        return self.ips

    def forget(self) -> None:
        """Hold nothing: every group is read again when next asked for."""
        self.ips, self._members, self._default_of = {}, {}, {}

    async def refresh(self, db: Executor, uuids: list[str]) -> set[str]:
        """Bring the groups held up to date with these instances as they are now (their
        addresses, groups, deletion), reading only these instances; which groups changed.
        What changed for an instance not named here is not seen: the caller names every
        instance that changed since the groups were read (else it calls `forget`)."""
        if not uuids or not self._members:
            return set()
        async with self._lock:
            try:
                return await self._refresh(db, uuids)
            except BaseException:
                self.forget()  # half updated: read everything again
                raise

    async def _refresh(self, db: Executor, uuids: list[str]) -> set[str]:
        rows = await repo.member_state(db, uuids)
        listed = await repo.memberships(db, uuids)
        changed: set[str] = set()
        for uuid in uuids:
            row = rows.get(uuid)
            if row is None or row["deleted"]:
                row = {"id": 0, "project_id": None, "addresses": []}  # a member of nothing
                groups: set[str] = set()
                lone = False
            else:
                groups = set(listed.get(uuid, ()))
                lone = not groups  # a member of its project's default group
            ips = fixed_ips(row["addresses"])
            for g, members in self._members.items():
                member = g in groups or (lone and row["project_id"] == self._default_of.get(g))
                entry = ((int(lone), row["id"]), ips) if member and ips else None
                if members.get(uuid) != entry:
                    if entry is None:
                        del members[uuid]
                    else:
                        members[uuid] = entry
                    changed.add(g)
        for g in changed:
            self.ips[g] = _listed(self._members[g])
        return changed


async def desired_state(
    db: Executor,
    host: str,
    version: int = VERSION,
    *,
    remote_ips: RemoteGroupReads | None = None,
) -> dict[str, Any]:
    """The network state `host` must enforce for its live instances, in `version` 1 or 2
    (3 and 4 are version 2 documents to which the pusher adds its versions).

    `remote_ips`: a push round's shared reads of remote groups; the groups this host needs
    that are not in it yet are read and added to it."""
    if version not in VERSIONS:
        raise ValueError(f"no network state version {version}")
    remote_ips = remote_ips or RemoteGroupReads()
    on_host = await repo.instances_on_host(db, host)
    docs = await _instance_docs(db, on_host, version, remote_ips)
    if version == VERSION:
        return {"version": VERSION, "host": host, "instances": docs}
    return {
        "version": version,
        "host": host,
        "remote_groups": _named_groups(docs, remote_ips.ips),
        "instances": docs,
    }


async def instance_docs(
    db: Executor, wanted: Mapping[str, Collection[str]], remote_ips: RemoteGroupReads
) -> dict[str, dict[str, dict[str, Any]]]:
    """For each host of `wanted`, the compact (version 2) documents of those of its uuids
    that are live on it, by uuid: a uuid left out is no longer that host's. One read for all
    the hosts; their remote groups' members are in `remote_ips` afterwards."""
    uuids = sorted({uuid for among in wanted.values() for uuid in among})
    rows = [
        row
        for row in await repo.live_instances_among(db, uuids)
        if row["uuid"] in wanted.get(row["host"], ())
    ]
    docs = await _instance_docs(db, rows, COMPACT_VERSION, remote_ips)
    out: dict[str, dict[str, dict[str, Any]]] = {host: {} for host in wanted}
    for row, doc in zip(rows, docs, strict=True):
        out[row["host"]][doc["uuid"]] = doc
    return out


def remote_groups_of(doc: dict[str, Any]) -> set[str]:
    """The remote groups an instance's document names."""
    return {r["remote_group_id"] for r in doc["ingress"] + doc["egress"] if r["remote_group_id"]}


def _named_groups(docs: list[dict[str, Any]], group_ips: dict[str, list[str]]) -> dict:
    named = {g for doc in docs for g in remote_groups_of(doc)}
    return {g: ips for g, ips in group_ips.items() if g in named}


async def _instance_docs(
    db: Executor, on_host: list[Row], version: int, remote_ips: RemoteGroupReads
) -> list[dict[str, Any]]:
    """The documents of these instances (rows as instances_on_host reads them)."""
    uuids = [row["uuid"] for row in on_host]
    member_of = await repo.memberships(db, uuids)
    projects = sorted({row["project_id"] for row in on_host})
    defaults = await repo.default_groups(db, projects)

    def effective(row: Row) -> list[str]:
        listed = member_of.get(row["uuid"])
        if listed:
            return listed
        return [defaults.get(row["project_id"], implicit_default_id(row["project_id"]))]

    groups_of = {row["uuid"]: effective(row) for row in on_host}
    real_ids = sorted({g for gs in groups_of.values() for g in gs if ":" not in g})
    rules_by_group: dict[str, list[Row]] = {}
    for rule in await repo.rules(db, real_ids):
        rules_by_group.setdefault(rule["security_group_id"], []).append(rule)
    for gs in groups_of.values():
        for g in gs:
            if g.startswith(f"{IMPLICIT_DEFAULT}:"):  # Neutron's default rules, no row yet
                rules = security_groups.new_group_rules(g, g.split(":", 1)[1], "", is_default=True)
                rules_by_group[g] = [
                    {**r, "id": f"{g}-{r['direction']}-{r['ethertype']}"} for r in rules
                ]

    # Remote groups -> their members' fixed IPs.
    remote_ids = sorted(
        {r["remote_group_id"] for rs in rules_by_group.values() for r in rs if r["remote_group_id"]}
    )
    group_ips = await remote_ips.read(db, remote_ids)

    floating = await repo.floating_of(db, uuids)
    docs: list[dict[str, Any]] = []
    for row in on_host:
        uuid = row["uuid"]
        ingress: list[dict[str, Any]] = []
        egress: list[dict[str, Any]] = []
        for g in groups_of[uuid]:
            for rule in rules_by_group.get(g, []):
                remote = rule["remote_group_id"]
                listed = group_ips.get(remote, []) if remote and version == VERSION else None
                doc = _rule_doc(rule, listed)
                if version != VERSION:
                    del doc["remote_ips"]
                (ingress if rule["direction"] == "ingress" else egress).append(doc)
        docs.append(
            {
                "uuid": uuid,
                "mac": row["mac_address"],
                "fixed_ips": fixed_ips(row["addresses"]),
                "security_groups": [g for g in groups_of[uuid] if ":" not in g],
                "ingress": ingress,
                "egress": egress,
                "floating_ips": [
                    {
                        "id": f["id"],
                        "address": f["floating_ip_address"],
                        "cidr": f["cidr"],
                        "fixed_ip": f["fixed_ip_address"],
                    }
                    for f in floating.get(uuid, [])
                    if f["cidr"]
                ],
            }
        )
    return docs
