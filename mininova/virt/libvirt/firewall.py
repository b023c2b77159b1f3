"""The host firewall and floating IPs of one agent: nftables, LAN addresses, one iptables rule.

`render(state)` is the sans-I/O core: the controller's desired network state (version 1 or 2, see
docs/agent-protocol.md, `network_sync`) becomes ONE nft script that deletes and recreates this
agent's own table (`ip mininova`, or `ip mininova_<host>` when the state names a host, so two
agents on one machine never touch each other's rules) in a single transaction. Every value is
validated before it is written into the script. `Firewall.apply(state)` runs it (`nft -f -`; a state
with no guest IP and no floating IP deletes the table instead),
adds/removes the floating addresses on the LAN interface (`ip addr`), keeps libvirt's
iptables FORWARD chain from rejecting DNAT'd connections, and records what it added in a
JSON file so that a restarted agent removes what is no longer wanted.

The table (priorities are nftables' standard names/numbers):
  forward (filter 0), input (filter 0), output (filter 0): established/related accepted,
      DHCP allowed, then per guest `ip saddr FIXED jump eg_G` (egress: matching rules
      `return`, the chain ends in drop) and `ip daddr FIXED jump in_G` (ingress: matching
      rules accept, the chain ends in drop). input sees guest→host, output host→guest.
  prerouting (nat -110) and nat_output (nat -110): `ip daddr FLOATING dnat to FIXED`.
  postrouting (nat 90, before libvirt's masquerade at 100): `ip saddr FIXED oifname LAN
      snat to FLOATING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The documents a driver gets: the agent hands on a version 3 state as version 2
# (mininova/protocol/network_members.py).
STATE_VERSIONS = (1, 2)
# Version 2: remote groups' addresses listed once, in `remote_groups` (network/hoststate.py).
COMPACT_STATE_VERSION = 2
DEFAULT_TABLE = "mininova"
COMMENT_PREFIX = "mininova"

# Neutron's protocol names (IPv4 ones) -> IP protocol numbers.
PROTOCOLS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "egp": 8,
    "udp": 17,
    "dccp": 33,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ospf": 89,
    "pgm": 113,
    "vrrp": 112,
    "sctp": 132,
    "udplite": 136,
}
# Protocols whose port range nft can match (`<name> dport a-b`), by number.
PORT_PROTOCOLS = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
ICMP = 1

_IDENT = re.compile(r"[^a-z0-9_]")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")


class StateError(ValueError):
    """The desired state is malformed (the agent refuses it as a whole)."""


# ---------------------------------------------------------------------------- the state


@dataclass(frozen=True)
class Rule:
    """One security group rule, IPv4, its remote group already expanded to addresses."""

    protocol: int | None = None  # None: any protocol
    port_min: int | None = None  # icmp: the type
    port_max: int | None = None  # icmp: the code
    remote_prefix: ipaddress.IPv4Network | None = None
    remote_ips: tuple[ipaddress.IPv4Address, ...] | None = None  # None: no remote group


@dataclass(frozen=True)
class FloatingIP:
    address: ipaddress.IPv4Address
    network: ipaddress.IPv4Network  # the external subnet it belongs to
    fixed: ipaddress.IPv4Address


@dataclass(frozen=True)
class Guest:
    uuid: str
    fixed_ips: tuple[ipaddress.IPv4Address, ...]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    floating_ips: tuple[FloatingIP, ...] = ()

    @property
    def chain_id(self) -> str:
        return _IDENT.sub("_", self.uuid.lower().replace("-", ""))[:40]


@dataclass(frozen=True)
class State:
    table: str
    guests: tuple[Guest, ...] = field(default_factory=tuple)

    @property
    def floating_ips(self) -> list[FloatingIP]:
        return [f for g in self.guests for f in g.floating_ips]


def table_name(host: Any) -> str:
    """`mininova` for no host, else `mininova_<host>` with [^a-z0-9_] made `_`."""
    if not isinstance(host, str) or not host:
        return DEFAULT_TABLE
    return f"{DEFAULT_TABLE}_{_IDENT.sub('_', host.lower())}"[:200]


def _v4(value: Any, what: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if not isinstance(addr, ipaddress.IPv4Address):
        raise StateError(f"{what} must be an IPv4 address, not {value!r}")
    return addr


def _net(value: Any, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if not isinstance(net, ipaddress.IPv4Network):
        raise StateError(f"{what} must be an IPv4 CIDR, not {value!r}")
    return net


def _int(value: Any, what: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StateError(f"{what} must be an integer in {low}..{high}, not {value!r}")
    return value


def _protocol(value: Any) -> int | None:
    if value is None or value in ("", "any"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str) and value.lower() in PROTOCOLS:
        return PROTOCOLS[value.lower()]
    else:
        raise StateError(f"unknown protocol {value!r}")
    if not 0 <= number <= 255:
        raise StateError(f"protocol number {number} out of range")
    return number


def _remote_ips(listed: Any, what: str) -> tuple[ipaddress.IPv4Address, ...]:
    if not isinstance(listed, list):
        raise StateError(f"{what} must be a list")
    # IPv6 members of a remote group cannot match in an `ip` table; they are left out.
    v4 = [ip for ip in listed if isinstance(ip, str) and ":" not in ip]
    return tuple(sorted({_v4(ip, f"{what}[]") for ip in v4}))


def parse_rule(
    raw: Mapping[str, Any],
    remote_groups: Mapping[str, tuple[ipaddress.IPv4Address, ...]] | None = None,
) -> Rule | None:
    """A Rule from its JSON form; None for an IPv6 rule (not enforced: the table is `ip`).

    `remote_groups` (version 2): the parsed addresses of each remote group, by id; a rule
    naming a group that is not there matches nothing."""
    if not isinstance(raw, Mapping):
        raise StateError("a rule must be an object")
    if (raw.get("ethertype") or "IPv4") != "IPv4":
        return None
    protocol = _protocol(raw.get("protocol"))
    high = 255 if protocol == ICMP else 65535
    low = 0 if protocol == ICMP else 1
    port_min = _int(raw.get("port_range_min"), "port_range_min", low, high)
    port_max = _int(raw.get("port_range_max"), "port_range_max", low, high)
    if protocol != ICMP and port_min is not None and port_max is None:
        port_max = port_min
    if protocol != ICMP and port_max is not None and port_min is None:
        port_min = port_max
    if protocol != ICMP and port_min is not None and port_max is not None and port_min > port_max:
        raise StateError(f"port_range_min {port_min} > port_range_max {port_max}")
    if protocol not in PORT_PROTOCOLS and protocol != ICMP:
        port_min = port_max = None  # Neutron ignores ports for protocols without them
    prefix = raw.get("remote_ip_prefix")
    remote_ips = raw.get("remote_ips")
    ips = None
    if remote_groups is not None:
        group = raw.get("remote_group_id")
        if group is not None:
            ips = remote_groups.get(group, ()) if isinstance(group, str) else ()
    elif remote_ips is not None:
        ips = _remote_ips(remote_ips, "remote_ips")
    return Rule(
        protocol=protocol,
        port_min=port_min,
        port_max=port_max,
        remote_prefix=_net(prefix, "remote_ip_prefix") if prefix else None,
        remote_ips=ips,
    )


def parse_state(raw: Mapping[str, Any]) -> State:
    """Validate the controller's document (version 1 or 2); StateError when it is malformed."""
    if not isinstance(raw, Mapping):
        raise StateError("the network state must be an object")
    version = raw.get("version")
    if type(version) is not int or version not in STATE_VERSIONS:
        raise StateError(f"unsupported network state version {version!r}")
    remote_groups = None
    if version == COMPACT_STATE_VERSION:
        listed = raw.get("remote_groups", {})
        if not isinstance(listed, Mapping):
            raise StateError("remote_groups must be an object")
        remote_groups = {
            str(group): _remote_ips(ips, f"remote_groups[{group}]") for group, ips in listed.items()
        }
    instances = raw.get("instances") or []
    if not isinstance(instances, list):
        raise StateError("instances must be a list")
    guests: list[Guest] = []
    seen_floating: set[ipaddress.IPv4Address] = set()
    for item in instances:
        if not isinstance(item, Mapping) or not isinstance(item.get("uuid"), str):
            raise StateError("each instance needs a uuid")
        fixed_raw = item.get("fixed_ips") or []
        if not isinstance(fixed_raw, list):
            raise StateError("fixed_ips must be a list")
        fixed = tuple(_v4(ip, "fixed_ips[]") for ip in fixed_raw if ":" not in str(ip))
        rules = {}
        for direction in ("ingress", "egress"):
            listed = item.get(direction) or []
            if not isinstance(listed, list):
                raise StateError(f"{direction} must be a list")
            parsed = (parse_rule(x, remote_groups) for x in listed)
            rules[direction] = tuple(r for r in parsed if r is not None)
        floating: list[FloatingIP] = []
        for fip in item.get("floating_ips") or []:
            if not isinstance(fip, Mapping):
                raise StateError("a floating IP must be an object")
            address = _v4(fip.get("address"), "floating address")
            network = _net(fip.get("cidr"), "floating cidr")
            target = fip.get("fixed_ip") or (str(fixed[0]) if fixed else None)
            if target is None:
                continue  # no fixed IP known yet: nothing to translate to
            if address in seen_floating:
                raise StateError(f"floating IP {address} listed twice")
            seen_floating.add(address)
            floating.append(FloatingIP(address, network, _v4(target, "floating fixed_ip")))
        guests.append(
            Guest(item["uuid"], fixed, rules["ingress"], rules["egress"], tuple(floating))
        )
    return State(table_name(raw.get("host")), tuple(guests))


# ---------------------------------------------------------------------------- rendering


def _set(items: Iterable[object]) -> str:
    listed = [str(i) for i in items]
    return listed[0] if len(listed) == 1 else "{ " + ", ".join(listed) + " }"


def rule_matches(rule: Rule, direction: str) -> str | None:
    """The nft match expression of one rule (no verdict); None when it can match nothing."""
    remote = "saddr" if direction == "ingress" else "daddr"
    parts: list[str] = []
    if rule.remote_prefix is not None and rule.remote_prefix.prefixlen > 0:
        parts.append(f"ip {remote} {rule.remote_prefix}")
    if rule.remote_ips is not None:
        if not rule.remote_ips:
            return None  # a remote group with no (IPv4) members
        parts.append(f"ip {remote} {_set(rule.remote_ips)}")
    if rule.protocol is not None:
        parts.append(f"meta l4proto {rule.protocol}")
        name = PORT_PROTOCOLS.get(rule.protocol)
        if name and rule.port_min is not None:
            ports = (
                str(rule.port_min)
                if rule.port_min == rule.port_max
                else f"{rule.port_min}-{rule.port_max}"
            )
            parts.append(f"{name} dport {ports}")
        if rule.protocol == ICMP and rule.port_min is not None:
            parts.append(f"icmp type {rule.port_min}")
            if rule.port_max is not None:
                parts.append(f"icmp code {rule.port_max}")
    return " ".join(parts)


def _guest_chains(guest: Guest) -> list[str]:
    out: list[str] = []
    for direction, prefix, verdict in (("ingress", "in", "accept"), ("egress", "eg", "return")):
        rules = guest.ingress if direction == "ingress" else guest.egress
        out.append(f"\tchain {prefix}_{guest.chain_id} {{")
        out.append(f'\t\tcomment "{direction} of {guest.chain_id}"')
        for rule in rules:
            match = rule_matches(rule, direction)
            if match is not None:
                out.append(f"\t\t{match} {verdict}".replace("\t\t ", "\t\t"))
        out.append("\t\tdrop")
        out.append("\t}")
    return out


def render(
    state: Mapping[str, Any] | State,
    bridge: str = "virbr0",
    lan_devices: Mapping[str, str] | None = None,
) -> str:
    """ONE nft script replacing this agent's table with `state` (a dict or a parsed State).

    `lan_devices` maps a floating subnet's CIDR to the host interface holding an address in
    it; SNAT to a floating IP is only rendered for traffic leaving through that interface."""
    parsed = state if isinstance(state, State) else parse_state(state)
    if not _IFNAME.match(bridge):
        raise StateError(f"bad bridge name {bridge!r}")
    devices = dict(lan_devices or {})
    for dev in devices.values():
        if not _IFNAME.match(dev):
            raise StateError(f"bad interface name {dev!r}")
    table = parsed.table
    guests = [g for g in parsed.guests if g.fixed_ips]
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        f'\tcomment "mininova: security groups and floating IPs (bridge {bridge})"',
    ]
    for guest in guests:
        lines += _guest_chains(guest)

    def base(name: str, hook: str, jumps: Sequence[str], extra: Sequence[str] = ()) -> None:
        lines.append(f"\tchain {name} {{")
        lines.append(f"\t\ttype filter hook {hook} priority filter; policy accept;")
        lines.append("\t\tct state established,related accept")
        lines.extend(f"\t\t{x}" for x in extra)
        lines.extend(f"\t\t{x}" for x in jumps)
        lines.append("\t}")

    egress = [
        f"ip saddr {_set(g.fixed_ips)} jump eg_{g.chain_id}" for g in guests
    ]  # guest as source
    ingress = [f"ip daddr {_set(g.fixed_ips)} jump in_{g.chain_id}" for g in guests]
    base("forward", "forward", egress + ingress)
    base("input", "input", egress, ["udp sport 68 udp dport 67 accept"])  # DHCP from guests
    base("output", "output", ingress, ["udp sport 67 udp dport 68 accept"])  # DHCP to guests

    floating = parsed.floating_ips
    dnat = [f"ip daddr {f.address} dnat to {f.fixed}" for f in floating]
    for name, hook in (("prerouting", "prerouting"), ("nat_output", "output")):
        lines.append(f"\tchain {name} {{")
        lines.append(f"\t\ttype nat hook {hook} priority -110; policy accept;")
        lines.extend(f"\t\t{x}" for x in dnat)
        lines.append("\t}")
    lines.append("\tchain postrouting {")
    lines.append("\t\ttype nat hook postrouting priority 90; policy accept;")
    for f in floating:
        dev = devices.get(str(f.network))
        if dev is not None:
            lines.append(f'\t\tip saddr {f.fixed} oifname "{dev}" snat to {f.address}')
    lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_delete(table: str) -> str:
    """The nft script that removes the table, whether it exists or not."""
    return f"table ip {table}\ndelete table ip {table}\n"


def lan_device_for(
    network: ipaddress.IPv4Network, ifaces: Sequence[Mapping[str, Any]], ours: Iterable[str] = ()
) -> str | None:
    """The interface (from `ip -j addr` output) holding an address in `network` that is not
    one of the floating addresses we added ourselves (`ours`)."""
    skip = set(ours)
    for iface in ifaces:
        for info in iface.get("addr_info") or []:
            if info.get("family") != "inet" or info.get("local") in skip:
                continue
            with contextlib.suppress(ValueError):
                if ipaddress.IPv4Address(info["local"]) in network:
                    return str(iface.get("ifname"))
    return None


# ---------------------------------------------------------------------------- applying


async def run(
    argv: Sequence[str], stdin: str | None = None, timeout: float = 30
) -> tuple[int, str]:
    """Run a command; (exit status, stderr or stdout text). Missing binaries give 127."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return 127, f"{argv[0]}: not installed"
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"{argv[0]} timed out"
    text = (err or out or b"").decode(errors="replace").strip()
    return proc.returncode or 0, text if proc.returncode else (out or b"").decode(errors="replace")


class Firewall:
    """Applies desired states on this host; `record` remembers what it added (JSON)."""

    def __init__(self, record: Path, bridge: str = "virbr0") -> None:
        self.record = record
        self.bridge = bridge
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.record.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _save(self, data: Mapping[str, Any]) -> None:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.record)

    def _accept_rule(self, table: str) -> list[str]:
        return [
            "FORWARD",
            "-o",
            self.bridge,
            "-m",
            "conntrack",
            "--ctstate",
            "DNAT",
            "-m",
            "comment",
            "--comment",
            f"{COMMENT_PREFIX}:{table}",
            "-j",
            "ACCEPT",
        ]

    async def _set_accept(self, table: str, wanted: bool, errors: list[str]) -> None:
        rule = self._accept_rule(table)
        present = (await run(["iptables", "-C", *rule]))[0] == 0
        if wanted and not present:
            code, text = await run(["iptables", "-I", rule[0], "1", *rule[1:]])
            if code:
                errors.append(f"iptables -I FORWARD: {text}")
        while not wanted and present:
            code, text = await run(["iptables", "-D", *rule])
            if code:
                errors.append(f"iptables -D FORWARD: {text}")
                break
            present = (await run(["iptables", "-C", *rule]))[0] == 0

    async def apply(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Make the host match `raw`; {"ok", "errors", "table", "guests", "floating_ips"}."""
        state = parse_state(raw)
        async with self._lock:
            return await self._apply(state)

    async def _apply(self, state: State) -> dict[str, Any]:
        errors: list[str] = []
        record = self._load()
        added: list[dict[str, str]] = [
            a for a in record.get("addresses") or [] if isinstance(a, dict)
        ]
        ours = {a.get("address", "") for a in added}
        code, text = await run(["ip", "-j", "-4", "addr", "show"])
        try:
            ifaces = json.loads(text) if code == 0 else []
        except ValueError:
            ifaces = []
        if code:
            errors.append(f"ip addr show: {text}")
        devices: dict[str, str] = {}
        for fip in state.floating_ips:
            key = str(fip.network)
            if key not in devices:
                dev = lan_device_for(fip.network, ifaces, ours)
                if dev is None:
                    errors.append(f"no interface holds an address in {key} for {fip.address}")
                else:
                    devices[key] = dev
        empty = not any(g.fixed_ips for g in state.guests) and not state.floating_ips
        script = render_delete(state.table) if empty else render(state, self.bridge, devices)
        code, text = await run(["nft", "-f", "-"], script)
        if code:
            errors.append(f"nft -f: {text}")
        # A table left by an earlier record under another name (the host was renamed).
        old_table = record.get("table")
        if isinstance(old_table, str) and old_table != state.table and _IDENT.sub("", old_table):
            code, text = await run(["nft", "-f", "-"], render_delete(old_table))
            if code:
                errors.append(f"nft delete table {old_table}: {text}")
            await self._set_accept(old_table, False, errors)

        # LAN addresses: add the wanted ones, remove the recorded ones no longer wanted.
        wanted = {
            str(f.address): devices[str(f.network)]
            for f in state.floating_ips
            if str(f.network) in devices
        }
        present = {
            (info.get("local"), iface.get("ifname"))
            for iface in ifaces
            for info in iface.get("addr_info") or []
        }
        kept: list[dict[str, str]] = []
        for entry in added:
            address, dev = entry.get("address", ""), entry.get("dev", "")
            if wanted.get(address) == dev:
                kept.append(entry)
                continue
            if (address, dev) in present:
                code, text = await run(["ip", "addr", "del", f"{address}/32", "dev", dev])
                if code:
                    errors.append(f"ip addr del {address} dev {dev}: {text}")
                    kept.append(entry)  # try again next time
        have = {(e["address"], e["dev"]) for e in kept}
        for address, dev in wanted.items():
            if (address, dev) not in present:
                code, text = await run(["ip", "addr", "add", f"{address}/32", "dev", dev])
                if code:
                    errors.append(f"ip addr add {address} dev {dev}: {text}")
                    continue
            if (address, dev) not in have:
                kept.append({"address": address, "dev": dev})
        await self._set_accept(state.table, bool(wanted), errors)
        self._save({"table": state.table, "addresses": kept})
        for error in errors:
            log.warning("network sync: %s", error)
        return {
            "ok": not errors,
            "errors": errors,
            "table": state.table,
            "guests": len(state.guests),
            "floating_ips": sorted(wanted),
        }
