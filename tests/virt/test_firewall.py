"""The host firewall (mininova/virt/libvirt/firewall.py): render() structure, and the real
kernel: a state applied with `nft`, read back as JSON, then the empty state removes it all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mininova.virt.libvirt.firewall import Firewall, StateError, parse_state, render

G1 = "11111111-2222-3333-4444-555555555555"
G2 = "66666666-7777-8888-9999-000000000000"


def _state(host: str = "fwunit", **extra: Any) -> dict[str, Any]:
    guest1 = {
        "uuid": G1,
        "mac": "52:54:00:00:00:01",
        "fixed_ips": ["192.168.122.50"],
        "ingress": [
            {"ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
            {"ethertype": "IPv4", "protocol": None, "remote_ips": ["192.168.122.51"]},
            {"ethertype": "IPv4", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
            {
                "ethertype": "IPv4",
                "protocol": "udp",
                "port_range_min": 1000,
                "port_range_max": 2000,
                "remote_ip_prefix": "10.0.0.0/8",
            },
            {"ethertype": "IPv4", "protocol": "tcp", "remote_ips": []},  # empty group
            {"ethertype": "IPv6", "protocol": "tcp", "port_range_min": 80},  # not enforced
        ],
        "egress": [{"ethertype": "IPv4", "protocol": None}],
        "floating_ips": [{"address": "10.203.250.120", "cidr": "10.203.250.0/24"}],
    }
    guest2 = {"uuid": G2, "fixed_ips": ["192.168.122.51"], "ingress": [], "egress": []}
    return {"version": 1, "host": host, "instances": [guest1, guest2], **extra}


def _chain(script: str, name: str) -> list[str]:
    """The statement lines of one chain in a rendered script."""
    lines = script.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_render_replaces_only_the_agents_own_table_in_one_script() -> None:
    script = render(_state())
    lines = script.splitlines()
    assert lines[:3] == [
        "table ip mininova_fwunit",
        "delete table ip mininova_fwunit",
        "table ip mininova_fwunit {",
    ]
    assert [line for line in lines if line.startswith("table")] == lines[:1] + lines[2:3]
    assert render({"version": 1, "instances": []}).startswith("table ip mininova\n")


def test_ingress_rules_accept_and_the_chain_ends_in_drop() -> None:
    chain = _chain(render(_state()), "in_" + G1.replace("-", ""))
    assert chain[0].startswith("comment ")
    assert chain[1:] == [
        "meta l4proto 6 tcp dport 22 accept",
        "ip saddr 192.168.122.51 accept",
        "meta l4proto 1 icmp type 8 icmp code 0 accept",
        "ip saddr 10.0.0.0/8 meta l4proto 17 udp dport 1000-2000 accept",
        "drop",
    ]  # the empty remote group and the IPv6 rule match nothing here
    assert _chain(render(_state()), "in_" + G2.replace("-", ""))[1:] == ["drop"]


def test_egress_rules_return_so_the_peers_ingress_still_applies() -> None:
    script = render(_state())
    assert _chain(script, "eg_" + G1.replace("-", ""))[1:] == ["return", "drop"]
    forward = _chain(script, "forward")
    assert forward[:2] == [
        "type filter hook forward priority filter; policy accept;",
        "ct state established,related accept",
    ]
    # every egress jump comes before every ingress jump
    jumps = [line for line in forward if "jump" in line]
    assert [j.split()[1] for j in jumps] == ["saddr", "saddr", "daddr", "daddr"]
    assert f"ip daddr 192.168.122.50 jump in_{G1.replace('-', '')}" in jumps


def test_host_traffic_and_dhcp() -> None:
    script = render(_state())
    output = _chain(script, "output")
    assert "udp sport 67 udp dport 68 accept" in output
    assert f"ip daddr 192.168.122.51 jump in_{G2.replace('-', '')}" in output
    assert not any("saddr" in line for line in output)
    inp = _chain(script, "input")
    assert "udp sport 68 udp dport 67 accept" in inp
    assert f"ip saddr 192.168.122.50 jump eg_{G1.replace('-', '')}" in inp


def test_floating_ip_nat() -> None:
    script = render(_state(), lan_devices={"10.203.250.0/24": "lan0"})
    for chain in ("prerouting", "nat_output"):
        lines = _chain(script, chain)
        assert lines[0].startswith("type nat hook ") and "priority -110" in lines[0]
        assert lines[1:] == ["ip daddr 10.203.250.120 dnat to 192.168.122.50"]
    post = _chain(script, "postrouting")
    assert "priority 90" in post[0]
    assert post[1:] == ['ip saddr 192.168.122.50 oifname "lan0" snat to 10.203.250.120']
    # no interface known for the subnet: DNAT only
    assert _chain(render(_state()), "postrouting")[1:] == []


def test_the_empty_state_keeps_only_the_base_chains() -> None:
    script = render({"version": 1, "host": "fwunit", "instances": []})
    assert "jump" not in script and "dnat" not in script and "snat" not in script
    assert _chain(script, "forward")[1:] == ["ct state established,related accept"]


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 3, "instances": []},
        {"version": True, "instances": []},
        {"version": 2, "remote_groups": [], "instances": []},
        {"version": 2, "remote_groups": {"g": ["1.2.3.4; flush ruleset"]}, "instances": []},
        {"version": 1, "instances": [{"uuid": G1, "fixed_ips": ["1.2.3.4; flush ruleset"]}]},
        {"version": 1, "instances": [{"uuid": G1, "ingress": [{"protocol": "bogus"}]}]},
        {
            "version": 1,
            "instances": [{"uuid": G1, "ingress": [{"protocol": "tcp", "port_range_min": 70000}]}],
        },
        {
            "version": 1,
            "instances": [
                {"uuid": G1, "ingress": [{"protocol": "tcp", "remote_ip_prefix": "x/8"}]}
            ],
        },
    ],
)
def test_malformed_states_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        parse_state(bad)


def test_version_2_lists_each_remote_group_once_and_renders_as_version_1() -> None:
    """The compact document: rules name their remote group, its addresses are listed once."""
    compact = _state()
    ingress = compact["instances"][0]["ingress"]
    ingress[1] = {"ethertype": "IPv4", "protocol": None, "remote_group_id": "web"}
    ingress[4] = {"ethertype": "IPv4", "protocol": "tcp", "remote_group_id": "empty"}
    compact.update(version=2, remote_groups={"web": ["192.168.122.51", "fd00::5"], "empty": []})
    assert render(compact) == render(_state())
    # A group the document does not list matches nothing (as an empty one).
    del compact["remote_groups"]["empty"]
    assert render(compact) == render(_state())


def test_a_guest_without_a_fixed_ip_gets_no_rules() -> None:
    state = {"version": 1, "instances": [{"uuid": G1, "fixed_ips": [], "ingress": []}]}
    assert "jump" not in render(state)


# ---------------------------------------------------------------------------- real kernel

NFT = shutil.which("nft")


def _nft_json(*args: str) -> dict[str, Any]:
    proc = subprocess.run(["nft", "-j", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(NFT is None, reason="nft (nftables) not installed: run scripts/host-setup.sh")
@pytest.mark.skipif(os.geteuid() != 0, reason="nftables needs root")
async def test_apply_then_empty_state_on_the_real_kernel(tmp_path: Path) -> None:
    host = f"fwunit{os.getpid()}"
    table = f"mininova_{host}"
    # The floating subnet is held by no interface: DNAT and filter only, no address change.
    fw = Firewall(tmp_path / "net.json", bridge="virbr0")
    try:
        result = await fw.apply(_state(host))
        assert result["table"] == table
        assert [e for e in result["errors"] if "nft" in e] == []
        items = _nft_json("list", "table", "ip", table)["nftables"]
        chains = {i["chain"]["name"]: i["chain"] for i in items if "chain" in i}
        assert {"forward", "input", "output", "prerouting", "nat_output", "postrouting"} <= set(
            chains
        )
        assert chains["prerouting"]["type"] == "nat" and chains["prerouting"]["prio"] == -110
        assert chains["postrouting"]["prio"] == 90
        rules = [i["rule"] for i in items if "rule" in i]
        ingress = [r for r in rules if r["chain"] == "in_" + G1.replace("-", "")]
        assert {"drop": None} in ingress[-1]["expr"]
        dports = [
            e["match"]["right"]
            for r in ingress
            for e in r["expr"]
            if "match" in e and e["match"]["left"].get("payload", {}).get("field") == "dport"
        ]
        assert 22 in dports and {"range": [1000, 2000]} in dports
        dnat = [e["dnat"] for r in rules for e in r["expr"] if "dnat" in e]
        assert dnat == [{"addr": "192.168.122.50"}, {"addr": "192.168.122.50"}]
        # A second apply replaces, not appends.
        await fw.apply(_state(host))
        again = _nft_json("list", "table", "ip", table)["nftables"]
        assert len([i for i in again if "rule" in i]) == len(rules)

        result = await fw.apply({"version": 1, "host": host, "instances": []})
        assert result["ok"], result
        tables = _nft_json("list", "tables")["nftables"]
        assert not any(t.get("table", {}).get("name") == table for t in tables)
        assert "192.168.122.50" not in json.dumps(_nft_json("list", "ruleset"))
        assert json.loads((tmp_path / "net.json").read_text())["addresses"] == []
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
