"""Security groups and floating IPs enforced on a real host (issue 9), through the real
`openstack` CLI: mininova serve -> libvirt agent -> nftables / ip addr / QEMU guest.

The tests run in file order on one guest: security group rules open and close port 22 as
seen from the host; a floating IP makes the guest's Dropbear reachable from the laptop
namespace, and goes away again; a change made while the agent is down is reconciled when it
reconnects; a deleted server leaves no rule behind.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.libvirt_e2e.conftest import make_ed25519_public_key
from tests.libvirt_e2e.host import TINY_IMAGE
from tests.netfw.conftest import HOST, TABLE, FwCloud, skip_reason

SKIP_REASON = skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.netns,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]
BOOT_TIMEOUT = 240
BANNER = "SSH-2.0"
PROBE = (
    "import socket, sys\n"
    "try:\n"
    "    s = socket.create_connection((sys.argv[1], 22), timeout=4)\n"
    "    s.settimeout(8)\n"
    "    print(s.recv(64).decode(errors='replace'))\n"
    "except OSError as exc:\n"
    "    print('FAIL', exc)\n"
)


def banner_from_host(address: str) -> str:
    """The first bytes port 22 of `address` sends, or 'FAIL ...' (from the root namespace)."""
    try:
        with socket.create_connection((address, 22), timeout=4) as s:
            s.settimeout(8)
            return s.recv(64).decode(errors="replace")
    except OSError as exc:
        return f"FAIL {exc}"


def banner_from_laptop(cloud: FwCloud, address: str) -> str:
    proc = cloud.lan.in_laptop(sys.executable, "-c", PROBE, address)
    return (proc.stdout or proc.stderr).strip()


def ssh_from_laptop(cloud: FwCloud, address: str, command: str) -> subprocess.CompletedProcess:
    """The system ssh client, run in the laptop namespace, with keypair fwkey's private key."""
    key = cloud.root / "fwkey"
    if shutil.which("ssh") is None or not key.exists():
        pytest.skip("host capability missing: ssh client or ssh-keygen (openssh-client)")
    return cloud.lan.in_laptop(
        "ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", f"root@{address}",
        command, timeout=90,
    )  # fmt: skip


def ruleset() -> str:
    proc = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def table_rules() -> list[dict[str, Any]]:
    proc = subprocess.run(
        ["nft", "-j", "list", "table", "ip", TABLE], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return []
    return [i["rule"] for i in json.loads(proc.stdout)["nftables"] if "rule" in i]


def dnat_targets() -> list[tuple[str, str]]:
    """(floating, fixed) of every DNAT rule in the agent's table."""
    out = []
    for rule in table_rules():
        dnat = [e["dnat"]["addr"] for e in rule["expr"] if "dnat" in e]
        daddr = [
            e["match"]["right"]
            for e in rule["expr"]
            if "match" in e and e["match"]["left"].get("payload", {}).get("field") == "daddr"
        ]
        if dnat:
            out.append((daddr[0], dnat[0]))
    return out


def lan_addresses(cloud: FwCloud) -> list[str]:
    proc = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", cloud.lan.dev], capture_output=True, text=True
    )
    return [a["local"] for i in json.loads(proc.stdout) for a in i.get("addr_info", [])]


def fixed_ip(cloud: FwCloud, name: str) -> str:
    def found() -> str | None:
        addresses = cloud.show(name).get("addresses") or {}
        if isinstance(addresses, str):  # older clients: "private=192.168.122.7"
            return addresses.split("=", 1)[1].split(",")[0].strip() if "=" in addresses else None
        for ips in addresses.values():
            for ip in ips:
                if "." in ip:
                    return ip
        return None

    return cloud.wait(found, 120, f"a fixed IP for {name}")


def test_boot(cloud: FwCloud) -> None:
    cloud.run(
        "image", "create", "--file", str(TINY_IMAGE), "--disk-format", "qcow2",
        "--container-format", "bare", "--public", "tiny",
    )  # fmt: skip
    make_ed25519_public_key(cloud.root / "fwkey.pub")
    cloud.run("keypair", "create", "--public-key", str(cloud.root / "fwkey.pub"), "fwkey")
    server = cloud.json(
        "server", "create", "--image", "tiny", "--flavor", "m1.micro", "--key-name", "fwkey",
        "--wait", "fwvm",
    )  # fmt: skip
    cloud.ids.add(server["id"])
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == HOST, server
    cloud.facts["fixed"] = fixed_ip(cloud, "fwvm")
    cloud.wait(
        lambda: "sshd: listening on 22" in cloud.console("fwvm"),
        BOOT_TIMEOUT,
        "Dropbear in fwvm",
        interval=2,
    )


def test_security_group_rule_opens_and_closes_port_22(cloud: FwCloud) -> None:
    fixed = cloud.facts["fixed"]
    # the default group: ingress only from its members; the host is not one
    cloud.wait(lambda: any(r["chain"].startswith("in_") for r in table_rules()), 30, "the table")
    assert banner_from_host(fixed).startswith("FAIL"), "port 22 open without a rule"
    rule = cloud.json(
        "security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
        "--dst-port", "22", "--remote-ip", "0.0.0.0/0", "default",
    )  # fmt: skip
    cloud.facts["ssh_rule"] = rule["id"]
    cloud.wait(lambda: banner_from_host(fixed).startswith(BANNER), 30, "port 22 to open")
    cloud.run("security", "group", "rule", "delete", rule["id"])
    cloud.wait(lambda: banner_from_host(fixed).startswith("FAIL"), 30, "port 22 to close")
    rule = cloud.json(
        "security", "group", "rule", "create", "--ingress", "--protocol", "tcp",
        "--dst-port", "22", "--remote-ip", "0.0.0.0/0", "default",
    )  # fmt: skip
    cloud.wait(lambda: banner_from_host(fixed).startswith(BANNER), 30, "port 22 to reopen")


def test_floating_ip_reaches_the_guest_from_the_laptop(cloud: FwCloud) -> None:
    lan = cloud.lan
    cloud.run("network", "create", "--external", "public")
    cloud.run(
        "subnet", "create", "--network", "public", "--subnet-range", lan.cidr,
        "--allocation-pool", f"start={lan.addr(100)},end={lan.addr(150)}",
        "--gateway", lan.addr(1), "--no-dhcp", "public-subnet",
    )  # fmt: skip
    fip = cloud.json("floating", "ip", "create", "public")["floating_ip_address"]
    cloud.facts["fip"] = fip
    assert banner_from_laptop(cloud, fip).startswith("FAIL")
    cloud.run("server", "add", "floating", "ip", "fwvm", fip)
    cloud.wait(lambda: banner_from_laptop(cloud, fip).startswith(BANNER), 60, "ssh via the FIP")
    assert (fip, cloud.facts["fixed"]) in dnat_targets()
    assert fip in lan_addresses(cloud)
    # A student on the LAN logs in with the keypair's private key.
    login = ssh_from_laptop(cloud, fip, "cat /etc/hostname; echo via-floating-ip")
    assert login.returncode == 0, f"ssh from the laptop failed: {login.stderr}{cloud.logs()}"
    assert login.stdout.split() == ["fwvm", "via-floating-ip"], login.stdout

    cloud.run("server", "remove", "floating", "ip", "fwvm", fip)
    cloud.wait(lambda: fip not in lan_addresses(cloud), 30, "the FIP to leave the LAN")
    assert banner_from_laptop(cloud, fip).startswith("FAIL")
    assert dnat_targets() == []
    assert fip not in ruleset()
    rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    assert f"mininova:{TABLE}" not in rules


def test_agent_restart_reconciles_a_change_made_while_it_was_down(cloud: FwCloud) -> None:
    fip = cloud.facts["fip"]
    cloud.run("server", "add", "floating", "ip", "fwvm", fip)
    cloud.wait(lambda: banner_from_laptop(cloud, fip).startswith(BANNER), 60, "ssh via the FIP")
    cloud.agent.stop(signal.SIGTERM)
    cloud.run("server", "remove", "floating", "ip", "fwvm", fip)
    assert (fip, cloud.facts["fixed"]) in dnat_targets()  # stale: nobody told the host
    assert fip in lan_addresses(cloud)
    offset = len(cloud.agent_log())
    cloud.agent.start()
    cloud.wait_agent_connected(after=offset)
    cloud.wait(lambda: dnat_targets() == [], 60, "the stale DNAT rule to go")
    cloud.wait(lambda: fip not in lan_addresses(cloud), 30, "the stale address to go")
    assert fip not in ruleset()
    # the security group state survived the restart
    assert banner_from_host(cloud.facts["fixed"]).startswith(BANNER)


def test_server_delete_leaves_no_rule(cloud: FwCloud) -> None:
    fip, fixed = cloud.facts["fip"], cloud.facts["fixed"]
    cloud.run("server", "add", "floating", "ip", "fwvm", fip)
    cloud.wait(lambda: (fip, fixed) in dnat_targets(), 60, "the DNAT rule")
    cloud.run("server", "delete", "--wait", "fwvm")
    cloud.wait(lambda: fixed not in ruleset() and fip not in ruleset(), 60, "no rule left")
    cloud.wait(lambda: fip not in lan_addresses(cloud), 30, "the address to go")
    listed = cloud.json("floating", "ip", "show", fip)
    assert not listed.get("fixed_ip_address") and not listed.get("port_id"), listed
