"""Chaos on libvirt: `kill -9` of the agent in the middle of a spawn, then the agent restarts.

Real processes on the real libvirtd (`mininova serve` + one libvirt agent, tests/libvirt_e2e's
cloud): a server is created and the agent is killed with SIGKILL as soon as its overlay disk
exists in the agent's instances dir (the spawn has fetched the image and begun building the
guest; the domain may or may not be defined yet). The agent is started again; once it has
rejoined and the server has settled, a user sees the server ACTIVE, or ERROR with a fault
naming the cut build, and nothing of a guest the cloud does not run is left on the host: no
libvirt domain (`virsh list --all`), no directory under the instances dir, no DHCP
reservation or lease for the server's MAC (`virsh net-dumpxml` / `net-dhcp-leases default`),
and `mininova doctor` is clean.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import tests.libvirt_e2e.conftest as lvconf
from tests.e2e.procs import BIN
from tests.libvirt_e2e.conftest import HOST, Cloud, real_cloud
from tests.libvirt_e2e.host import TINY_IMAGE, host_skip_reason, virsh

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.first_backend_only,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

NAME = "chaos"
FLAVOR = "m1.micro"  # the tiny guest does not boot in m1.nano's 64 MiB
NETWORK = "default"
HOST_DIRS = {"_base", "_probe"}  # the driver's own directories in the instances dir


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    # No guest boots here: QEMU/TCG at once instead of the KVM probe at each agent start
    # (MININOVA_E2E_VIRT_TYPE still chooses).
    lvconf.VIRT_TYPE, kept = os.environ.get("MININOVA_E2E_VIRT_TYPE", "qemu"), lvconf.VIRT_TYPE
    try:
        with real_cloud(request, HOST, Cloud, "mininova-chaos-agent-") as cl:
            yield cl
    finally:
        lvconf.VIRT_TYPE = kept


def _domains_of(uuid: str) -> list[str]:
    """Names of the libvirt domains (any state) with this uuid."""
    proc = virsh("list", "--all", "--uuid", check=True)
    return [u for u in proc.stdout.split() if u.lower() == uuid.lower()]


def _reservations(mac: str) -> list[str]:
    xml = virsh("net-dumpxml", NETWORK, check=True).stdout
    return [line for line in xml.splitlines() if mac.lower() in line.lower()]


def _leases(mac: str) -> list[str]:
    out = virsh("net-dhcp-leases", NETWORK).stdout
    return [line for line in out.splitlines() if mac.lower() in line.lower()]


def _instance_dirs(cloud: Cloud) -> set[str]:
    if not cloud.instances.is_dir():
        return set()
    return {p.name for p in cloud.instances.iterdir() if p.name not in HOST_DIRS}


def _mac(cloud: Cloud, uuid: str) -> str:
    """The server's MAC (the database row: an ERROR server shows no addresses)."""
    from tests.kit.pg_fixtures import read_rows

    rows = read_rows(
        cloud.serve.database_url,
        cloud.serve.data_dir / "mininova.sqlite",
        "SELECT mac_address FROM instances WHERE uuid = ?",
        (uuid,),
        timeout=5,
    )
    return str(rows[0]["mac_address"])


def _doctor(cloud: Cloud) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "mininova"), "doctor", "--data-dir", str(cloud.serve.data_dir), "--json"]
    return subprocess.run(cmd, env=cloud.serve.env, capture_output=True, text=True, timeout=60)


def _request(cloud: Cloud, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """`method` `path` (under the cloud's URL) with the admin token `Cloud._api` caches."""
    cloud._api("/flavors")  # logs in once
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    ctype = "application/octet-stream" if isinstance(body, bytes) else "application/json"
    request = urllib.request.Request(
        cloud.serve.url + path,
        data=data,
        method=method,
        headers={"X-Auth-Token": cloud.facts["token"], "Content-Type": ctype, **headers},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _boot(cloud: Cloud, name: str) -> str:
    """Create a server of the tiny image (uploaded once) through the API, no client
    processes; its id."""
    if "image" not in cloud.facts:
        image = _request(
            cloud,
            "POST",
            "/image/v2/images",
            {"name": "tiny", "disk_format": "qcow2", "container_format": "bare"},
        )
        _request(cloud, "PUT", f"/image/v2/images/{image['id']}/file", TINY_IMAGE.read_bytes())
        cloud.facts["image"] = image["id"]
    flavor = next(f for f in cloud._api("/flavors")["flavors"] if f["name"] == FLAVOR)
    body = {"server": {"name": name, "imageRef": cloud.facts["image"], "flavorRef": flavor["id"]}}
    return str(_request(cloud, "POST", "/compute/v2.1/servers", body)["server"]["id"])


@pytest.mark.parametrize("moment", ["disk", "domain"])
def test_kill_9_agent_mid_spawn_leaves_no_orphan(cloud: Cloud, moment: str) -> None:
    """`moment`: kill once the overlay disk exists (the domain may not be defined yet), or
    once the domain is defined (its DHCP reservation made, the guest starting)."""
    name = f"{NAME}-{moment}"
    uuid = _boot(cloud, name)
    cloud.ids.add(uuid)
    mac = _mac(cloud, uuid)
    disk = cloud.instances / uuid / "disk"
    if moment == "disk":
        cloud.wait(disk.exists, 120, f"the overlay disk {disk}", interval=0.02)
    else:
        cloud.wait(lambda: _domains_of(uuid), 120, f"the domain of {name}", interval=0.02)
    agent_proc = cloud.agent.proc
    assert agent_proc is not None
    os.kill(agent_proc.pid, signal.SIGKILL)
    agent_proc.wait(timeout=10)
    cloud.agent.proc = None
    cloud.facts["domain_at_kill"] = bool(_domains_of(uuid))

    offset = len(cloud.agent_log())
    cloud.agent.start()
    cloud.wait(lambda: "connected to " in cloud.agent_log()[offset:], 90, "the agent to rejoin")

    def settled() -> dict[str, Any] | None:
        shown = cloud._server_by_name(name)
        if shown["status"] in ("ACTIVE", "ERROR") and shown["OS-EXT-STS:task_state"] is None:
            return shown
        return None

    shown = cloud.wait(settled, 180, f"{name} to settle (ACTIVE or ERROR)")
    if shown["status"] == "ERROR":  # as a user sees it: the fault names the cut build
        message = (shown.get("fault") or {}).get("message", "")
        assert re.search(r"Build of instance .* failed", message), shown.get("fault")

    def no_orphans() -> bool:
        servers = cloud._api("/servers/detail")["servers"]
        live = {s["id"] for s in servers if s["status"] == "ACTIVE"}  # the earlier case's too
        found = {
            "domains": _domains_of(uuid),
            "dirs": sorted(_instance_dirs(cloud)),
            "reservations": _reservations(mac),
            "leases": _leases(mac),
        }
        cloud.facts["host_state"] = found
        dhcp_ok = uuid in live or not (found["reservations"] or found["leases"])
        return bool(found["domains"]) == (uuid in live) and set(found["dirs"]) == live and dhcp_ok

    try:
        cloud.wait(no_orphans, 30, "the host to hold no guest the cloud does not run")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nserver: {shown['status']}, domain when killed: "
            f"{cloud.facts['domain_at_kill']}, on the host: {cloud.facts['host_state']}"
        ) from None

    doctor = _doctor(cloud)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout) == {"ok": True, "problems": []}
