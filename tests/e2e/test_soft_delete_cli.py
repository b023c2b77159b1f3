"""Soft delete with the real `openstack` CLI: `server delete` keeps the server SOFT_DELETED,
`server restore` brings it back, `server delete --force` deletes it at once (real `mininova
serve` with MININOVA_RECLAIM_INSTANCE_INTERVAL, a fake-driver agent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.procs import Serve, base_env, free_port, osc_json, run_client, wait_until
from tests.kit.pg_fixtures import fresh_database_url

pytestmark = pytest.mark.usefixtures("fake_agent")


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Serve]:
    """This module's cloud: the e2e `serve` with soft delete on (an hour)."""
    tmp = tmp_path_factory.mktemp("cloud")
    env = base_env(tmp, fresh_database_url(request))
    env["MININOVA_RECLAIM_INSTANCE_INTERVAL"] = "3600"
    srv = Serve(tmp / "data", free_port(), env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _status(env: dict[str, str], name: str) -> str:
    return osc_json(env, "server", "show", name)["status"]


def _wait_status(env: dict[str, str], name: str, status: str) -> None:
    wait_until(lambda: _status(env, name) == status, 30, interval=0.5, what=f"{name} {status}")


def test_delete_restore_force_delete(serve: Serve, image: str) -> None:
    env = serve.os_env()
    server = osc_json(
        env, "server", "create", "--image", image, "--flavor", "m1.nano", "--wait", "sd1"
    )
    assert server["status"] == "ACTIVE"

    run_client(env, "openstack", "server", "delete", "sd1")
    _wait_status(env, "sd1", "SOFT_DELETED")
    shown = osc_json(env, "server", "show", "sd1")
    assert shown["OS-EXT-STS:vm_state"] == "soft-delete"
    assert shown["OS-EXT-STS:power_state"] == 4  # Shutdown (OSC -f json prints the number)
    assert [(s["Name"], s["Status"]) for s in osc_json(env, "server", "list")] == [
        ("sd1", "SOFT_DELETED")
    ]

    run_client(env, "openstack", "server", "restore", "sd1")
    _wait_status(env, "sd1", "ACTIVE")
    assert osc_json(env, "server", "show", "sd1")["OS-EXT-STS:power_state"] == 1  # Running
    again = run_client(env, "openstack", "server", "restore", "sd1", check=False)
    assert again.returncode != 0 and "409" in again.stderr, again.stderr

    run_client(env, "openstack", "server", "delete", "sd1")
    _wait_status(env, "sd1", "SOFT_DELETED")
    run_client(env, "openstack", "server", "delete", "--force", "sd1")
    wait_until(
        lambda: osc_json(env, "server", "list") == [], 30, interval=0.5, what="sd1 to be gone"
    )
    gone = run_client(env, "openstack", "server", "show", server["id"], check=False)
    assert gone.returncode != 0 and "No Server found" in gone.stderr, gone.stderr
