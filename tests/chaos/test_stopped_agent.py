"""A SIGSTOPped agent (a half-open link): its host goes down, its builds fail over, nothing
hangs; after SIGCONT it reconnects and is reconciled.

Real processes: `mininova serve` (heartbeats every 0.5 s, down after 3 missed) and two
`mininova agent --driver fake`: hostA (more memory, so the scheduler prefers it; slow boots, so
builds are still spawning there) and hostB. Three builds are spawning on hostA and one server
runs there when hostA is stopped; a delete of that server is asked at once.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.chaos.test_kill_serve import COMPUTE, _prepare, _token, wait_doctor_clean
from tests.e2e.procs import Agent, Serve, base_env, free_port
from tests.kit.wait import wait_for

pytestmark = pytest.mark.first_backend_only

HEADERS = {"X-OpenStack-Nova-API-Version": "2.74"}  # `host` in server create (admin)


async def _hosts(session: aiohttp.ClientSession, serve: Serve) -> dict[str, str]:
    url = f"{serve.url}{COMPUTE}/os-hypervisors/detail"
    async with session.get(url, headers={"X-OpenStack-Nova-API-Version": "2.88"}) as resp:
        return {h["hypervisor_hostname"]: h["state"] for h in (await resp.json())["hypervisors"]}


async def _server(session: aiohttp.ClientSession, serve: Serve, uuid: str) -> dict[str, Any]:
    async with session.get(f"{serve.url}{COMPUTE}/servers/{uuid}", headers=HEADERS) as resp:
        return {} if resp.status == 404 else (await resp.json())["server"]


async def _create(
    session: aiohttp.ClientSession, serve: Serve, image: str, name: str, host: str | None = None
) -> str:
    body: dict[str, Any] = {"name": name, "imageRef": image, "flavorRef": "1"}
    if host:
        body["host"] = host
    url = f"{serve.url}{COMPUTE}/servers"
    async with session.post(url, json={"server": body}, headers=HEADERS) as resp:
        assert resp.status == 202, await resp.text()
        return (await resp.json())["server"]["id"]


def _guests(agent: Agent) -> set[str]:
    assert agent.data_dir is not None
    state = agent.data_dir / "fake-guests.json"
    return set(json.loads(state.read_text())) if state.exists() else set()


async def _scenario(serve: Serve, a: Agent, b: Agent) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=10)  # nothing may hang: every answer within 10 s
    async with aiohttp.ClientSession(timeout=timeout) as plain:
        token, project = await _token(plain, serve)
    async with aiohttp.ClientSession(headers={"X-Auth-Token": token}, timeout=timeout) as s:
        image = await _prepare(s, serve, project)

        async def both_up() -> bool:
            return await _hosts(s, serve) == {"hostA": "up", "hostB": "up"}

        await wait_for(both_up, 30, 0.2, "both hosts up")
        running = await _create(s, serve, image, "on-a", host="hostA")

        async def active(uuid: str) -> bool:
            return (await _server(s, serve, uuid)).get("status") == "ACTIVE"

        await wait_for(lambda: active(running), 30, 0.2, "the server on hostA")
        builds = [await _create(s, serve, image, f"inflight-{i}") for i in range(3)]

        async def spawning_on_a() -> bool:
            shown = [await _server(s, serve, u) for u in builds]
            return all(
                x.get("OS-EXT-STS:task_state") == "spawning"
                and x.get("OS-EXT-SRV-ATTR:host") == "hostA"
                for x in shown
            )

        await wait_for(spawning_on_a, 20, 0.05, "the three builds spawning on hostA")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        stopped = True
        try:
            # a delete of its server, asked while its link still looks alive
            url = f"{serve.url}{COMPUTE}/servers/{running}"
            async with s.delete(url) as resp:
                assert resp.status == 204
            await wait_for(
                lambda: _hosts_state(s, serve, "hostA", "down"), 15, 0.2, "hostA to read down"
            )

            async def failed_over() -> bool:
                shown = [await _server(s, serve, u) for u in builds]
                return all(x.get("status") in ("ACTIVE", "ERROR") for x in shown)

            await wait_for(failed_over, 30, 0.2, "the builds to fail over")
            builds_shown = [await _server(s, serve, u) for u in builds]
            await wait_for(
                lambda: _gone(s, serve, running), 30, 0.2, "the delete of hostA's server"
            )
            async with s.get(f"{serve.url}{COMPUTE}/servers/detail") as resp:
                assert resp.status == 200  # the API answers throughout
        finally:
            if stopped:
                a.proc.send_signal(signal.SIGCONT)
        await wait_for(
            lambda: _hosts_state(s, serve, "hostA", "up"), 30, 0.2, "hostA up after SIGCONT"
        )
        # hostA's spawns went on after SIGCONT: wait for them to end, then for their reaping
        assert a.log is not None
        log_of_a = a.log

        def spawns_ended() -> bool:
            text = log_of_a.read_text()
            return all(f"order spawn uuid={u} " in text for u in builds)

        await wait_for(spawns_ended, 30, 0.1, "hostA's cut spawns to end")
        live_on_a: set[str] = set()

        async def reconciled() -> bool:
            async with s.get(
                f"{serve.url}{COMPUTE}/servers/detail?all_tenants=1", headers=HEADERS
            ) as resp:
                servers = (await resp.json())["servers"]
            live_on_a.clear()
            live_on_a.update(x["id"] for x in servers if x["OS-EXT-SRV-ATTR:host"] == "hostA")
            return _guests(a) <= live_on_a

        await wait_for(reconciled, 30, 0.2, "hostA's guests to match its instances")
        await wait_doctor_clean(serve)
        return {"builds": builds_shown, "guests_a": _guests(a), "live_on_a": live_on_a}


async def _hosts_state(s: aiohttp.ClientSession, serve: Serve, host: str, state: str) -> bool:
    return (await _hosts(s, serve)).get(host) == state


async def _gone(s: aiohttp.ClientSession, serve: Serve, uuid: str) -> bool:
    return await _server(s, serve, uuid) == {}


def test_a_sigstopped_agent_fails_over_and_reconciles_after_sigcont(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update({"MININOVA_HEARTBEAT_INTERVAL": "0.5", "MININOVA_MISSED_HEARTBEATS_DOWN": "3"})
    serve = Serve(tmp_path / "data", free_port(), env)
    serve.start()
    agents = {
        "hostA": Agent(
            serve,
            "hostA",
            data_dir=tmp_path / "agent-hostA",
            extra_env={
                "MININOVA_AGENT_FAKE_MEMORY_MB": "65536",
                "MININOVA_AGENT_FAKE_BOOT_SECONDS": "3",
            },
        ),
        "hostB": Agent(serve, "hostB", data_dir=tmp_path / "agent-hostB"),
    }
    for agent in agents.values():
        agent.start()
    try:
        result = asyncio.run(_scenario(serve, agents["hostA"], agents["hostB"]))
    finally:
        for agent in agents.values():
            agent.stop()
        serve.stop()
    for server in result["builds"]:
        assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "hostB"), server
    assert result["guests_a"] <= result["live_on_a"]
