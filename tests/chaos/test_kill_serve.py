"""`kill -9` of serve during a burst of creates and deletes: nothing accepted is lost.

Real processes: `mininova serve` and a `mininova agent --driver fake` (its guests persist in
its data dir, as libvirt's do). 100 concurrent `POST /servers` over HTTP, half of them deleted
as soon as they are accepted; serve is killed with SIGKILL once 40-60 creates were accepted, then
started again on the same data dir, and the agent reconnects by itself. Then every request
that got its 202 (204 for a delete) must have its record and end ACTIVE or deleted as asked
(ERROR only with a fault naming a real cause); no allocation without a live instance, no guest
on the agent without a live instance placed there, `PRAGMA integrity_check` is ok and
`mininova doctor` finds nothing wrong.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import login
from tests.e2e.procs import MININOVA, Agent, Serve, base_env, free_port
from tests.kit.wait import wait_for

pytestmark = pytest.mark.first_backend_only

CREATES = 100
KILL_AFTER = 40  # accepted creates, at least
KILL_BY = 60  # at most
COMPUTE = "/compute/v2.1"
RESTART_CAUSE = "The controller restarted during the build."


@dataclass
class Burst:
    accepted: list[str] = field(default_factory=list)  # 202s, in order
    delete_asked: set[str] = field(default_factory=set)  # DELETEs answered 204
    delete_unanswered: set[str] = field(default_factory=set)  # sent, no answer (the kill)
    unanswered_creates: int = 0
    killed: asyncio.Event = field(default_factory=asyncio.Event)


async def _token(session: aiohttp.ClientSession, serve: Serve) -> tuple[str, str]:
    """An admin token and the admin project's id."""
    token, body = await login(session, serve.url, "admin", serve.password, "admin")
    return token, body["project"]["id"]


async def _prepare(session: aiohttp.ClientSession, serve: Serve, project: str) -> str:
    """An image, and quotas that let the burst through; the image id."""
    new = {"name": "cirros", "disk_format": "qcow2", "container_format": "bare"}
    async with session.post(serve.url + "/image/v2/images", json=new) as resp:
        assert resp.status == 201, await resp.text()
        image = (await resp.json())["id"]
    headers = {"Content-Type": "application/octet-stream"}
    data = b"QFI\xfb" + b"\0" * 65536
    async with session.put(
        f"{serve.url}/image/v2/images/{image}/file", data=data, headers=headers
    ) as resp:
        assert resp.status == 204, await resp.text()
    quota = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
    async with session.put(f"{serve.url}{COMPUTE}/os-quota-sets/{project}", json=quota) as resp:
        assert resp.status == 200, await resp.text()
    return image


async def _host_up(session: aiohttp.ClientSession, serve: Serve) -> bool:
    url = f"{serve.url}{COMPUTE}/os-hypervisors/detail"
    async with session.get(url, headers={"X-OpenStack-Nova-API-Version": "2.88"}) as resp:
        return any(h["state"] == "up" for h in (await resp.json())["hypervisors"])


async def _one(
    session: aiohttp.ClientSession, serve: Serve, image: str, i: int, burst: Burst
) -> None:
    body = {"server": {"name": f"chaos-{i}", "imageRef": image, "flavorRef": "1"}}
    try:
        async with session.post(f"{serve.url}{COMPUTE}/servers", json=body) as resp:
            if resp.status != 202:
                return
            uuid = (await resp.json())["server"]["id"]
    except (TimeoutError, aiohttp.ClientError):
        burst.unanswered_creates += 1
        return
    burst.accepted.append(uuid)
    if len(burst.accepted) >= KILL_AFTER:
        burst.killed.set()
    if i % 2:
        return
    try:
        async with session.delete(f"{serve.url}{COMPUTE}/servers/{uuid}") as resp:
            if resp.status == 204:
                burst.delete_asked.add(uuid)
    except (TimeoutError, aiohttp.ClientError):
        burst.delete_unanswered.add(uuid)


async def _settled(session: aiohttp.ClientSession, serve: Serve, uuid: str) -> dict[str, Any]:
    """The server once it left BUILD and has no task ({} once it is gone)."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        async with session.get(f"{serve.url}{COMPUTE}/servers/{uuid}") as resp:
            if resp.status == 404:
                found.clear()
                return True
            server = (await resp.json())["server"]
        found.update(server)
        return server["status"] in ("ACTIVE", "ERROR") and not server["OS-EXT-STS:task_state"]

    await wait_for(done, 60, 0.2, f"server {uuid} to settle")
    return found


def _database_checks(
    db_file: Path, agent_dir: Path, host: str, accepted: list[str]
) -> dict[str, Any]:
    """integrity_check, the rows of the accepted creates (deleted ones included),
    allocations without a live instance, guests without one placed here."""
    with sqlite3.connect(db_file) as conn:
        rows = {r[0] for r in conn.execute("SELECT uuid FROM instances")}
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        dangling = conn.execute(
            "SELECT a.instance_uuid FROM allocations a LEFT JOIN instances i"
            " ON i.uuid = a.instance_uuid AND i.deleted = 0 WHERE i.uuid IS NULL"
        ).fetchall()
        misplaced_claims = conn.execute(
            "SELECT a.instance_uuid FROM allocations a JOIN instances i"
            " ON i.uuid = a.instance_uuid WHERE i.host IS NOT a.host"
        ).fetchall()
        placed = {
            row[0]
            for row in conn.execute(
                "SELECT uuid FROM instances WHERE deleted = 0 AND host = ?", (host,)
            )
        }
    state = agent_dir / "fake-guests.json"  # written with the first guest
    guests = set(json.loads(state.read_text())) if state.exists() else set()
    return {
        "integrity": integrity,
        "records": len(set(accepted) & rows),
        "allocations_without_instance": [r[0] for r in dangling],
        "allocations_on_another_host": [r[0] for r in misplaced_claims],
        "guests_without_instance": sorted(guests - placed),
        "instances_without_guest": sorted(placed - guests),
    }


async def _burst_kill_restart(serve: Serve, agent: Agent) -> tuple[Burst, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as plain:
        token, project = await _token(plain, serve)
    headers = {"X-Auth-Token": token, "X-OpenStack-Nova-API-Version": "2.1"}
    burst = Burst()
    connector = aiohttp.TCPConnector(limit=20)
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=connector
    ) as session:
        image = await _prepare(session, serve, project)
        await wait_for(lambda: _host_up(session, serve), 30, 0.2, "the agent's host up")
        requests = [
            asyncio.create_task(_one(session, serve, image, i, burst)) for i in range(CREATES)
        ]
        await asyncio.wait_for(burst.killed.wait(), 60)
        # ... and once the agent has spawned some (builds in every stage get cut), or while
        # the burst is still on when the machine is quick
        guests = agent.data_dir / "fake-guests.json"  # type: ignore[operator]
        await wait_for(
            lambda: guests.exists() or len(burst.accepted) >= KILL_BY, 20, 0.01, "the kill"
        )
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(serve.proc.wait)
        serve.proc = None
        await asyncio.gather(*requests)
    # The same data dir and port: the agent's link comes back by itself.
    await asyncio.to_thread(serve.start)
    async with aiohttp.ClientSession(timeout=timeout) as plain:
        token, _ = await _token(plain, serve)
    headers["X-Auth-Token"] = token
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        outcome = {u: await _settled(session, serve, u) for u in burst.accepted}
    # The doctor compares with the guests the agent reports (every heartbeat): clean soon.
    await wait_doctor_clean(serve)
    return burst, outcome


async def wait_doctor_clean(serve: Serve) -> None:
    """Until `mininova doctor` finds nothing wrong (20 s); its last report in the failure."""
    report: list[str] = [""]

    def clean() -> bool:
        ok, report[0] = _doctor(serve)
        return ok

    await wait_for(
        lambda: asyncio.to_thread(clean), 20, 0.5, lambda: f"a clean doctor: {report[0]}"
    )


def _doctor(serve: Serve) -> tuple[bool, str]:
    proc = subprocess.run(
        [*MININOVA, "doctor", "--data-dir", str(serve.data_dir), "--json"],
        env=serve.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode not in (0, 1):
        raise AssertionError(f"doctor failed: {proc.stderr}")
    return proc.returncode == 0, proc.stdout


def _resumed(serve: Serve) -> dict[str, int]:
    """What the restarted serve took over (its conductor/resume.py log lines)."""
    assert serve.log is not None
    text = serve.log.read_text()
    unsent = re.findall(r"restart: (\d+) build\(s\) that reached no host", text)
    sent = re.findall(r"restart: (\d+) build\(s\)/action\(s\) wait for their hosts", text)
    return {
        "unsent builds built again": sum(map(int, unsent)),
        "sent builds settled from the host's report": sum(map(int, sent)),
    }


def test_kill_9_of_serve_during_a_burst_loses_nothing(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    serve = Serve(tmp_path / "data", free_port(), env)
    serve.start()
    agent = Agent(
        serve,
        "chaos1",
        data_dir=tmp_path / "agent-chaos1",
        extra_env={"MININOVA_AGENT_FAKE_VCPUS": "256", "MININOVA_AGENT_FAKE_BOOT_SECONDS": "1.0"},
    )
    agent.start()
    try:
        burst, outcome = asyncio.run(_burst_kill_restart(serve, agent))
    finally:
        agent.stop()
        serve.stop()
    assert agent.data_dir is not None
    checks = _database_checks(
        serve.data_dir / "mininova.sqlite", agent.data_dir, "chaos1", burst.accepted
    )

    active = [u for u, s in outcome.items() if s.get("status") == "ACTIVE"]
    error = {u: s for u, s in outcome.items() if s.get("status") == "ERROR"}
    gone = [u for u, s in outcome.items() if not s]
    figures = {
        "creates sent": CREATES,
        "creates accepted (202)": len(burst.accepted),
        "creates unanswered (the kill)": burst.unanswered_creates,
        "deletes accepted (204)": len(burst.delete_asked),
        "deletes unanswered": len(burst.delete_unanswered),
        "records found": checks["records"],
        "ACTIVE": len(active),
        "deleted": len(gone),
        "ERROR": len(error),
        **_resumed(serve),
        "orphan allocations": len(checks["allocations_without_instance"]),
        "orphan guests": len(checks["guests_without_instance"]),
        "integrity_check": checks["integrity"],
    }
    print("\nkill -9 of serve during a burst:", json.dumps(figures, indent=1))
    for uuid, server in error.items():
        print("ERROR", uuid, (server.get("fault") or {}).get("message"))

    assert len(burst.accepted) >= KILL_AFTER
    assert checks["records"] == len(burst.accepted)
    for uuid in burst.delete_asked:
        assert uuid in gone, f"{uuid}: deleted (204) but {outcome[uuid].get('status')}"
    for uuid in set(burst.accepted) - burst.delete_asked - burst.delete_unanswered:
        assert uuid not in gone, f"{uuid} was never asked to go, yet it is gone"
    for uuid, server in error.items():
        message = (server.get("fault") or {}).get("message", "")
        assert message and message != RESTART_CAUSE, f"{uuid}: ERROR with fault {message!r}"
    assert checks["integrity"] == "ok"
    assert checks["allocations_without_instance"] == []
    assert checks["allocations_on_another_host"] == []
    assert checks["guests_without_instance"] == []
    assert checks["instances_without_guest"] == []
