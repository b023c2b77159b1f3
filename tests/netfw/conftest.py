"""A real cloud for the host firewall tests: `mininova serve` + a libvirt agent on host `fw1`,
and a "LAN": a veth pair between the root namespace (the host's LAN interface, 10.203.N.1/24)
and a "student laptop" namespace (10.203.N.2/24).

Clean-up (also after a failure): this cloud's domains (by uuid), the agent's nft table
`ip mininova_fw1`, its iptables FORWARD rule, the floating addresses on the LAN interface
(they go with the veth), the namespace and the directories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mininova.paths import INSTANCES_ROOT
from tests.e2e.procs import Agent, Serve
from tests.libvirt_e2e.conftest import Cloud, real_cloud
from tests.libvirt_e2e.host import host_skip_reason

HOST = "fw1"
TABLE = "mininova_fw1"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def skip_reason() -> str | None:
    reason = host_skip_reason()
    if reason:
        return reason
    if os.geteuid() != 0:
        return "needs root (nftables, ip netns)"
    for tool in ("nft", "ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run scripts/host-setup.sh)"
    return None


def _pick_subnet() -> int:
    used = (
        _run("ip", "-4", "-o", "addr").stdout
        + _run("ip", "-4", "route", "show", "table", "all").stdout
    )
    start = os.getpid() % 250 + 1
    for i in range(250):
        n = (start + i - 1) % 250 + 1
        if f"10.203.{n}." not in used:
            return n
    pytest.skip("no free 10.203.N.0/24 subnet on this host")


@dataclass
class Lan:
    n: int
    dev: str  # the host's LAN interface (root namespace)
    netns: str  # the laptop

    @property
    def cidr(self) -> str:
        return f"10.203.{self.n}.0/24"

    def addr(self, last: int) -> str:
        return f"10.203.{self.n}.{last}"

    def in_laptop(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class FwCloud(Cloud):
    lan: Lan

    @property
    def instances(self) -> Path:
        return INSTANCES_ROOT / HOST

    def wait_agent_connected(self, after: int = 0, timeout: float = 90) -> None:
        self.wait(lambda: "connected to " in self.agent_log()[after:], timeout, "agent fw1")
        self.wait(
            lambda: any(
                s["State"] == "up" and s["Host"] == HOST
                for s in self.json("compute", "service", "list", "--service", "nova-compute")
            ),
            30,
            "nova-compute on fw1 to be up",
        )


def _drop_forward_rule() -> None:
    for _ in range(10):
        rules = _run("iptables", "-S", "FORWARD", check=False).stdout.splitlines()
        ours = [r for r in rules if f"mininova:{TABLE}" in r]
        if not ours:
            return
        _run("iptables", *ours[0].replace("-A ", "-D ", 1).split(), check=False)


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    n = _pick_subnet()
    net = Lan(n, f"fwlan{n}", f"mnfw-laptop-{n}")
    _run("ip", "netns", "add", net.netns)
    try:
        _run("ip", "link", "add", net.dev, "type", "veth", "peer", "name", f"fwlap{n}")
        _run("ip", "link", "set", f"fwlap{n}", "netns", net.netns)
        _run("ip", "addr", "add", f"{net.addr(1)}/24", "dev", net.dev)
        _run("ip", "link", "set", net.dev, "up")
        laptop = ["ip", "netns", "exec", net.netns, "ip"]
        _run(*laptop, "addr", "add", f"{net.addr(2)}/24", "dev", f"fwlap{n}")
        _run(*laptop, "link", "set", f"fwlap{n}", "up")
        _run(*laptop, "link", "set", "lo", "up")
        yield net
    finally:
        _run("ip", "link", "del", net.dev, check=False)
        _run("ip", "netns", "del", net.netns, check=False)


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest, lan: Lan) -> Iterator[FwCloud]:
    def make(root: Path, serve: Serve, agent: Agent) -> FwCloud:
        made = FwCloud(root, serve, agent)
        made.lan = lan
        return made

    try:
        with real_cloud(request, HOST, make, "mininova-netfw-") as cl:
            yield cl
    finally:
        _run("nft", "delete", "table", "ip", TABLE, check=False)
        _drop_forward_rule()
