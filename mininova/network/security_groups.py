"""Security groups and their rules, as Neutron defines them (no HTTP here).

A project's `default` group is made on first use, with Neutron's four rules (egress IPv4 and
IPv6 to anywhere, ingress IPv4 and IPv6 from members of the group itself); a new group gets
the two egress rules. Rules are validated with Neutron's rules and error types: the errors
carry `kind` (Neutron's type) and are NotFound (404), Conflict (409) or Invalid (400).

The groups are records the agents' firewalls apply (`ConductorAPI.sync_network`); the TCP
tunnel applies them itself with `tunnel_allows`.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib
from typing import TYPE_CHECKING, Any, Protocol

from mininova.errors import Conflict, Invalid, NotFound
from mininova.store import security_groups as repo
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

DEFAULT_NAME = "default"
DEFAULT_DESCRIPTION = "Default security group"
ETHERTYPES = ("IPv4", "IPv6")
DIRECTIONS = ("ingress", "egress")
# Protocol names accepted (lower case) and their IP protocol numbers.
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58}
# Where the agent's tunnel connections come from: the private subnet's gateway (the host).
TUNNEL_SOURCE = "192.168.122.1"
_ANY = ("any", "")
_PORT_PROTOCOLS = (6, 17)
_ICMP_PROTOCOLS = (1, 58)
# Default group ids are derived from the project: two first uses cannot make two defaults.
_DEFAULT_NAMESPACE = uuidlib.UUID("0f4c8d7e-2b1a-4e59-8c3d-6a7b9e1f2d30")


class Caller(Protocol):
    """Who asks (the API's RequestContext fits)."""

    @property
    def project_id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


class GroupError(Exception):
    """Mixin: the Neutron type of a security group error."""

    kind: str


class TypedNotFound(NotFound, GroupError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TypedConflict(Conflict, GroupError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TypedInvalid(Invalid, GroupError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def group_not_found(group_id: str) -> TypedNotFound:
    return TypedNotFound("SecurityGroupNotFound", f"Security group {group_id} does not exist")


def rule_not_found(rule_id: str) -> TypedNotFound:
    return TypedNotFound(
        "SecurityGroupRuleNotFound", f"Security group rule {rule_id} does not exist"
    )


def over_quota(resource: str) -> TypedConflict:
    return TypedConflict("OverQuota", f"Quota exceeded for resources: ['{resource}'].")


def _invalid_input(message: str) -> TypedInvalid:
    return TypedInvalid("InvalidInput", f"Invalid input for operation: {message}.")


# ------------------------------------------------------------------------------- groups


def _rule_values(
    group_id: str, project_id: str, direction: str, ethertype: str, now: str, **extra: Any
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": str(uuidlib.uuid4()),
        "security_group_id": group_id,
        "project_id": project_id,
        "direction": direction,
        "ethertype": ethertype,
        "protocol": None,
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": None,
        "description": "",
        "created_at": now,
        "updated_at": now,
    }
    values.update(extra)
    return values


async def _insert_group(
    db: Executor,
    group_id: str,
    project_id: str,
    name: str,
    description: str,
    *,
    stateful: bool = True,
    is_default: bool = False,
) -> None:
    now = now_iso()
    await repo.insert_group(
        db,
        {
            "id": group_id,
            "project_id": project_id,
            "name": name,
            "description": description,
            "stateful": int(stateful),
            "is_default": int(is_default),
            "revision_number": 1,
            "created_at": now,
            "updated_at": now,
        },
    )
    for rule in new_group_rules(group_id, project_id, now, is_default=is_default):
        await repo.insert_rule(db, rule)


def new_group_rules(
    group_id: str, project_id: str, now: str, *, is_default: bool
) -> list[dict[str, Any]]:
    """The rules Neutron gives a new group: egress anywhere (IPv4, IPv6); a project's default
    group also admits ingress from its own members."""
    rules = [_rule_values(group_id, project_id, "egress", e, now) for e in ETHERTYPES]
    if is_default:
        rules += [
            _rule_values(group_id, project_id, "ingress", e, now, remote_group_id=group_id)
            for e in ETHERTYPES
        ]
    return rules


async def ensure_default(db: Executor, project_id: str) -> Row:
    """The project's `default` group, made (with Neutron's four rules) on first use."""
    found = await repo.default_group(db, project_id)
    if found is not None:
        return found
    store = getattr(db, "store", db)
    async with store.transaction() as tx:
        await tx.lock(f"security_groups:{project_id}")
        found = await repo.default_group(tx, project_id)
        if found is None:
            group_id = str(uuidlib.uuid5(_DEFAULT_NAMESPACE, project_id))
            await _insert_group(
                tx, group_id, project_id, DEFAULT_NAME, DEFAULT_DESCRIPTION, is_default=True
            )
            found = await repo.get_group(tx, group_id)
    assert found is not None
    return found


async def visible_groups(db: Executor, caller: Caller) -> list[Row]:
    """The groups the caller sees (its project's; an admin: all), its default made first."""
    await ensure_default(db, caller.project_id)
    return await repo.list_groups(db, None if caller.is_admin else caller.project_id)


def _may_see(caller: Caller, row: Row | None) -> bool:
    return row is not None and (caller.is_admin or row["project_id"] == caller.project_id)


async def find_group(db: Executor, caller: Caller, group_id: str) -> Row:
    """A group the caller may see; SecurityGroupNotFound (also for another project's)."""
    await ensure_default(db, caller.project_id)
    row = await repo.get_group(db, group_id)
    if not _may_see(caller, row):
        raise group_not_found(group_id)
    assert row is not None
    return row


async def find_by_name_or_id(db: Executor, caller: Caller, ref: str, project_id: str) -> Row | None:
    """Nova's lookup: a group of `project_id` named `ref`, else a visible group with id `ref`."""
    await ensure_default(db, project_id)
    for row in await repo.list_groups(db, project_id):
        if row["name"] == ref:
            return row
    row = await repo.get_group(db, ref)
    return row if _may_see(caller, row) else None


async def create_group(
    db: Executor,
    caller: Caller,
    project_id: str,
    name: str,
    description: str,
    *,
    stateful: bool = True,
    limit: int = -1,
) -> Row:
    """A new group (with its two egress rules); OverQuota past `limit` groups (-1: none)."""
    await ensure_default(db, project_id)
    if name == DEFAULT_NAME:
        raise TypedConflict(
            "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
        )
    store = getattr(db, "store", db)
    group_id = str(uuidlib.uuid4())
    async with store.transaction() as tx:
        await tx.lock(f"quota:{project_id}")
        if limit >= 0 and await repo.count_groups(tx, project_id) + 1 > limit:
            raise over_quota("security_group")
        await _insert_group(tx, group_id, project_id, name, description, stateful=stateful)
    row = await repo.get_group(db, group_id)
    assert row is not None
    return row


async def update_group(db: Executor, caller: Caller, group_id: str, changes: dict[str, Any]) -> Row:
    """Change a group's name or description (`default` keeps its name)."""
    row = await find_group(db, caller, group_id)
    if row["is_default"] and changes.get("name", DEFAULT_NAME) != DEFAULT_NAME:
        raise _invalid_input("Updating default security group not allowed")
    if changes.get("name") == DEFAULT_NAME and not row["is_default"]:
        raise TypedConflict(
            "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
        )
    await repo.update_group(db, group_id, now_iso(), **changes)
    updated = await repo.get_group(db, group_id)
    assert updated is not None
    return updated


async def delete_group(db: Executor, caller: Caller, group_id: str) -> list[str]:
    """Delete a group; the hosts whose traffic rules change. `default` and a group a server
    is in cannot go (409)."""
    row = await find_group(db, caller, group_id)
    if row["is_default"]:  # servers fall back to it: kept, for admins too
        raise TypedConflict(
            "SecurityGroupCannotRemoveDefault",
            "Insufficient rights for removing default security group.",
        )
    store = getattr(db, "store", db)
    async with store.transaction() as tx:
        members = (await repo.members_of_groups(tx, [group_id]))[group_id]
        if members:
            raise TypedConflict("SecurityGroupInUse", f"Security Group {group_id} in use.")
        hosts = await affected_hosts(tx, [group_id])
        await repo.delete_group(tx, group_id)
    return hosts


async def affected_hosts(db: Executor, group_ids: list[str]) -> list[str]:
    """Hosts whose allowed traffic depends on these groups: their members' and the members'
    of the groups whose rules name one of them as remote group."""
    referring = await repo.groups_referring(db, group_ids)
    return await repo.hosts_of_groups(db, sorted(set(group_ids) | set(referring)))


# -------------------------------------------------------------------------------- rules


def _protocol(value: Any, ethertype: str) -> str | None:
    """The protocol as stored: a lower-case name, a number 0-255 as text, or None (any)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _ANY:
        return None
    if text in PROTOCOL_NUMBERS:
        if PROTOCOL_NUMBERS[text] == 58 and ethertype == "IPv4":
            raise TypedInvalid(
                "SecurityGroupEthertypeConflictWithProtocol",
                f"Invalid ethertype {ethertype} for protocol {text}.",
            )
        return text
    if text.isdigit() and 0 <= int(text) <= 255:
        return str(int(text))
    names = ", ".join(repr(n) for n in ["any", *sorted(PROTOCOL_NUMBERS)])
    raise TypedInvalid(
        "SecurityGroupRuleInvalidProtocol",
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"[None, {names}] and integer representations [0 to 255] are supported.",
    )


def protocol_number(protocol: str | None) -> int | None:
    """The IP protocol number of a stored protocol (None: any)."""
    if protocol is None:
        return None
    if protocol in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[protocol]
    return int(protocol)


def _int_or_none(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).strip().lstrip("-").isdigit():
        raise _invalid_input(f"'{value}' is not an integer for {field}")
    return int(value)


def _ports(
    protocol: str | None, low: int | None, high: int | None
) -> tuple[int | None, int | None]:
    number = protocol_number(protocol)
    if number in _PORT_PROTOCOLS:
        for port in (low, high):
            if port is not None and not 1 <= port <= 65535:
                raise TypedInvalid(
                    "SecurityGroupInvalidPortValue", f"Invalid value for port {port}"
                )
        if low is not None and high is None:
            high = low  # Neutron: a single port
        if low is None and high is not None:
            low = high
        if low is not None and high is not None and low > high:
            raise TypedInvalid(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
        return low, high
    if number in _ICMP_PROTOCOLS:
        for value, field, attr in (
            (low, "type", "port_range_min"),
            (high, "code", "port_range_max"),
        ):
            if value is not None and not 0 <= value <= 255:
                raise TypedInvalid(
                    "SecurityGroupInvalidIcmpValue",
                    f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                )
        if low is None and high is not None:
            raise TypedInvalid(
                "SecurityGroupMissingIcmpType",
                f"ICMP code (port-range-max) {high} is provided but ICMP type "
                "(port-range-min) is missing.",
            )
        return low, high
    if low is not None or high is not None:
        if protocol is None:
            raise TypedInvalid(
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            )
        raise TypedInvalid(
            "SecurityGroupInvalidProtocolForPort",
            f"Invalid protocol {protocol} for port range, only supported for TCP and UDP.",
        )
    return None, None


def _prefix(value: Any, ethertype: str) -> str | None:
    """A CIDR with its host bits cleared (a bare address is a /32 or /128), as Neutron."""
    if value in (None, ""):
        return None
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        raise _invalid_input(f"'{value}' is not a valid IP subnet") from None
    if f"IPv{net.version}" != ethertype:
        raise TypedInvalid(
            "SecurityGroupRuleParameterConflict",
            f"Conflicting value ethertype {ethertype} for CIDR {value}",
        )
    return str(net)


def check_rule(given: dict[str, Any]) -> dict[str, Any]:
    """A rule request's fields normalised as Neutron stores them; 400s as Neutron's."""
    direction = given.get("direction")
    if direction not in DIRECTIONS:
        raise _invalid_input(f"direction '{direction}' is not in {list(DIRECTIONS)}")
    ethertype = given.get("ethertype") or "IPv4"
    matched = [e for e in ETHERTYPES if e.lower() == str(ethertype).lower()]
    if not matched:
        raise TypedInvalid(
            "SecurityGroupRuleInvalidEtherType",
            f"Security group rule for ethertype '{ethertype}' not supported. Allowed values "
            f"are {list(ETHERTYPES)}.",
        )
    ethertype = matched[0]
    protocol = _protocol(given.get("protocol"), ethertype)
    low = _int_or_none(given.get("port_range_min"), "port_range_min")
    high = _int_or_none(given.get("port_range_max"), "port_range_max")
    low, high = _ports(protocol, low, high)
    prefix = _prefix(given.get("remote_ip_prefix"), ethertype)
    remote_group = given.get("remote_group_id") or None
    if prefix is not None and remote_group is not None:
        raise TypedInvalid(
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        )
    return {
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": low,
        "port_range_max": high,
        "remote_ip_prefix": prefix,
        "remote_group_id": remote_group,
        "description": given.get("description") or "",
    }


def _any_prefix(prefix: str | None) -> str | None:
    return None if prefix in ("0.0.0.0/0", "::/0") else prefix


def _same_rule(row: Row, rule: dict[str, Any]) -> bool:
    keys = ("direction", "ethertype", "port_range_min", "port_range_max", "remote_group_id")
    return (
        all(row[k] == rule[k] for k in keys)
        and protocol_number(row["protocol"]) == protocol_number(rule["protocol"])
        and _any_prefix(row["remote_ip_prefix"]) == _any_prefix(rule["remote_ip_prefix"])
    )


async def visible_rules(db: Executor, caller: Caller) -> list[Row]:
    """The rules of the groups the caller sees (its default group made first)."""
    await ensure_default(db, caller.project_id)
    if caller.is_admin:
        return await repo.list_rules(db, None)
    groups = await repo.list_groups(db, caller.project_id)
    return await repo.rules_of_groups(db, [g["id"] for g in groups])


async def find_rule(db: Executor, caller: Caller, rule_id: str) -> Row:
    row = await repo.get_rule(db, rule_id)
    group = await repo.get_group(db, row["security_group_id"]) if row else None
    if row is None or not _may_see(caller, group):
        raise rule_not_found(rule_id)
    return row


async def create_rule(
    db: Executor, caller: Caller, group_id: str, given: dict[str, Any], *, limit: int = -1
) -> tuple[Row, list[str]]:
    """A new rule in a group the caller sees; the rule and the hosts whose rules change.

    404 for an unseen group or remote group, 409 SecurityGroupRuleExists for a duplicate,
    409 OverQuota past `limit` rules of the group's project (-1: no limit)."""
    group = await find_group(db, caller, group_id)
    rule = check_rule(given)
    if rule["remote_group_id"] is not None:
        remote = await repo.get_group(db, rule["remote_group_id"])
        if not _may_see(caller, remote):
            raise group_not_found(rule["remote_group_id"])
    project_id = group["project_id"]
    store = getattr(db, "store", db)
    async with store.transaction() as tx:
        await tx.lock(f"quota:{project_id}")
        for row in await repo.rules_of_groups(tx, [group_id]):
            if _same_rule(row, rule):
                raise TypedConflict(
                    "SecurityGroupRuleExists",
                    f"Security group rule already exists. Rule id is {row['id']}.",
                )
        if limit >= 0 and await repo.count_rules(tx, project_id) + 1 > limit:
            raise over_quota("security_group_rule")
        now = now_iso()
        values = {
            **_rule_values(group_id, project_id, rule["direction"], rule["ethertype"], now),
            **rule,
        }
        await repo.insert_rule(tx, values)
        await repo.bump_group(tx, group_id, now)
        hosts = await affected_hosts(tx, [group_id])
    row = await repo.get_rule(db, values["id"])
    assert row is not None
    return row, hosts


async def delete_rule(db: Executor, caller: Caller, rule_id: str) -> list[str]:
    """Delete a rule the caller sees; the hosts whose rules change."""
    row = await find_rule(db, caller, rule_id)
    store = getattr(db, "store", db)
    async with store.transaction() as tx:
        await repo.delete_rule(tx, rule_id)
        await repo.bump_group(tx, row["security_group_id"], now_iso())
        return await affected_hosts(tx, [row["security_group_id"]])


# ---------------------------------------------------------------------------- servers


async def resolve_for_server(
    db: Executor, caller: Caller, refs: list[str], project_id: str
) -> list[Row]:
    """The groups a new server asks for by name or id (`default` when none); Nova's 400."""
    if not refs:
        return [await ensure_default(db, project_id)]
    out: dict[str, Row] = {}
    for ref in refs:
        row = await find_by_name_or_id(db, caller, ref, project_id)
        if row is None:
            raise Invalid(f"Unable to find security_group with name or id '{ref}'")
        out[row["id"]] = row
    return list(out.values())


async def tunnel_refusal(db: Executor, inst: Row, port: int) -> str | None:
    """Why the server's security groups refuse a tunnel to `port` (None: they allow it)."""
    groups = (await repo.groups_of_instances(db, [inst["uuid"]]))[inst["uuid"]]
    rules = await repo.rules_of_groups(db, [g["id"] for g in groups])
    if tunnel_allows(rules, port, TUNNEL_SOURCE):
        return None
    names = ", ".join(dict.fromkeys(g["name"] for g in groups)) or "none"
    first = groups[0]["name"] if groups else DEFAULT_NAME
    return (
        f"Server {inst['uuid']} ({inst['name']}): no ingress rule of its security groups "
        f"({names}) allows TCP port {port} from {TUNNEL_SOURCE}. Allow it with "
        f"`openstack security group rule create --protocol tcp --dst-port {port} {first}`."
    )


def tunnel_allows(rules: list[Row], port: int, source_ip: str) -> bool:
    """Whether these (a server's groups') rules admit a TCP connection to `port` from
    `source_ip` (the agent's host address): an ingress IPv4 rule for TCP or any protocol,
    its port range covering `port` (or none), no remote group, its prefix (if any) holding
    `source_ip`."""
    source = ipaddress.ip_address(source_ip)
    for rule in rules:
        if rule["direction"] != "ingress" or rule["ethertype"] != "IPv4":
            continue
        if protocol_number(rule["protocol"]) not in (None, 6):
            continue
        if rule["remote_group_id"] is not None:
            continue
        low, high = rule["port_range_min"], rule["port_range_max"]
        if low is not None and port < low or high is not None and port > high:
            continue
        prefix = rule["remote_ip_prefix"]
        if prefix is not None and source not in ipaddress.ip_network(prefix):
            continue
        return True
    return False
