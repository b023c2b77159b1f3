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


async def _read_remote_groups(
    db: Executor, remote_ids: list[str], into: dict[str, list[str]]
) -> None:
    """Add each remote group's live members' fixed IPs (any host) to `into`, by group id."""
    if not remote_ids:
        return
    explicit = [g for g in remote_ids if ":" not in g]
    members = await repo.members(db, explicit)
    meta = await repo.groups(db, explicit)
    # A default group's members include the project's instances that are in no group.
    lone_projects = sorted(
        {meta[g]["project_id"] for g in explicit if g in meta and meta[g]["is_default"]}
        | {g.split(":", 1)[1] for g in remote_ids if ":" in g}
    )
    lone = await repo.ungrouped(db, lone_projects)
    for g in remote_ids:
        if ":" in g:
            rows = lone.get(g.split(":", 1)[1], [])
        else:
            rows = list(members.get(g, []))
            if g in meta and meta[g]["is_default"]:
                rows += lone.get(meta[g]["project_id"], [])
        ips: dict[str, None] = {}  # ordered, without repeats
        for row in rows:
            ips.update(dict.fromkeys(fixed_ips(row["addresses"])))
        into[g] = list(ips)


class RemoteGroupReads:
    """One push round's reads of remote groups, shared by the round's hosts: each group is read
    once, also when several hosts' states are worked out at the same time (a read awaits the
    database, and a second host must wait for it rather than read the group again)."""

    def __init__(self) -> None:
        self.ips: dict[str, list[str]] = {}  # remote group id -> member IPs
        self._lock = asyncio.Lock()

    async def read(self, db: Executor, remote_ids: list[str]) -> dict[str, list[str]]:
        async with self._lock:
            await _read_remote_groups(db, [g for g in remote_ids if g not in self.ips], self.ips)
        return self.ips


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
    db: Executor, host: str, uuids: list[str], remote_ips: RemoteGroupReads
) -> dict[str, dict[str, Any]]:
    """The compact (version 2) documents of those of `uuids` that are live on `host`, by uuid:
    a uuid left out is no longer `host`'s. Their remote groups' members are in `remote_ips`
    afterwards."""
    rows = await repo.instances_on_host_among(db, host, uuids)
    docs = await _instance_docs(db, rows, COMPACT_VERSION, remote_ips)
    return {doc["uuid"]: doc for doc in docs}


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
