"""One real cloud per test module: `mininova serve` + `mininova agent --driver fake`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import Agent, Serve, base_env, free_port, osc_json, run_client
from tests.kit.pg_fixtures import fresh_database_url


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("cloud")
    # PostgreSQL mode: one fresh database for the module (None: the SQLite file in data/).
    srv = Serve(tmp / "data", free_port(), base_env(tmp, fresh_database_url(request)))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def fake_agent(serve: Serve) -> Iterator[Agent]:
    assert serve.log is not None
    agent = Agent(serve, "fake1", data_dir=serve.log.parent / "agent-fake1")
    agent.start()
    env = serve.os_env()
    from tests.e2e.procs import wait_until

    wait_until(
        lambda: any(
            h["State"] == "up"
            for h in osc_json(env, "compute", "service", "list", "--service", "nova-compute")
        ),
        30,
        interval=0.5,
        what="the fake agent to be up",
    )
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def image(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("img")) / "disk.qcow2"
    path.write_bytes(b"QFI\xfb" + b"\0" * 65536)
    env = serve.os_env()
    created = osc_json(
        env,
        "image",
        "create",
        "--file",
        str(path),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "cirros",
    )
    return created["id"]


@pytest.fixture(scope="module")
def keypair(serve: Serve) -> str:
    run_client(serve.os_env(), "openstack", "keypair", "create", "k1")
    return "k1"
