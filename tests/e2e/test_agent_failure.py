"""Killing an agent: its host reads down, new boots go elsewhere or end in ERROR, never BUILD."""

from __future__ import annotations

import signal

from tests.e2e.procs import Agent, Serve, osc_json, run_client, wait_until

HEARTBEAT = 1.0  # MININOVA_HEARTBEAT_INTERVAL in base_env


def _state(env: dict[str, str], host: str) -> str:
    for svc in osc_json(env, "compute", "service", "list", "--service", "nova-compute"):
        if svc["Host"] == host:
            return svc["State"]
    return "missing"


def test_killed_agent_reads_down_and_boots_avoid_it(serve: Serve, image: str) -> None:
    env = serve.os_env()
    assert serve.log is not None
    agents = [
        Agent(serve, name, data_dir=serve.log.parent / f"agent-{name}")
        for name in ("hostA", "hostB")
    ]
    for agent in agents:
        agent.start()
    try:
        for agent in agents:
            wait_until(
                lambda a=agent: _state(env, a.host) == "up",
                30,
                interval=0.5,
                what=f"{agent.host} up",
            )
        agents[0].stop(signal.SIGKILL)
        # Within three heartbeat intervals (plus the CLI's own start-up time).
        wait_until(
            lambda: _state(env, "hostA") == "down",
            3 * HEARTBEAT + 1,
            interval=0.2,
            what="hostA to read down",
        )
        for i in range(3):
            server = osc_json(
                env,
                "server",
                "create",
                "--image",
                "cirros",
                "--flavor",
                "m1.nano",
                "--wait",
                f"after-kill-{i}",
            )
            assert server["status"] == "ACTIVE"
            assert server["OS-EXT-SRV-ATTR:host"] == "hostB"
        agents[1].stop(signal.SIGKILL)
        wait_until(
            lambda: _state(env, "hostB") == "down",
            3 * HEARTBEAT + 1,
            interval=0.2,
            what="hostB to read down",
        )
        proc = run_client(
            env,
            "openstack",
            "server",
            "create",
            "--image",
            "cirros",
            "--flavor",
            "m1.nano",
            "--wait",
            "no-host",
            check=False,
        )
        assert proc.returncode != 0, "a boot with no live host must fail, not hang"
        shown = osc_json(env, "server", "show", "no-host")
        assert shown["status"] == "ERROR"
        assert "No valid host" in shown["fault"]["message"]
        assert "down" in shown["fault"]["message"]
    finally:
        for agent in agents:
            agent.stop(signal.SIGKILL)
