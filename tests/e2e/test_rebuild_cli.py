"""`openstack server rebuild` end to end: real CLI, `mininova serve`, a fake-driver agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.procs import Serve, osc_json, run_client

pytestmark = pytest.mark.usefixtures("fake_agent")


def _second_image(serve: Serve, tmp_path: Path) -> str:
    path = tmp_path / "second.qcow2"
    path.write_bytes(b"QFI\xfb" + b"\1" * 65536)
    created = osc_json(
        serve.os_env(),
        "image",
        "create",
        "--file",
        str(path),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "second",
    )
    return str(created["id"])


def test_server_rebuild_with_image_name_and_wait(serve: Serve, image: str, tmp_path: Path) -> None:
    env = serve.os_env()
    server = osc_json(
        env, "server", "create", "--image", "cirros", "--flavor", "m1.nano", "--wait", "rb1"
    )
    assert server["status"] == "ACTIVE"
    second = _second_image(serve, tmp_path)

    out = run_client(
        env,
        "openstack",
        "server",
        "rebuild",
        "--image",
        "second",
        "--name",
        "rb1-new",
        "--property",
        "role=web",
        "--wait",
        "rb1",
        "-f",
        "json",
    ).stdout
    # `--wait` prints its progress ("Complete") on stdout before the JSON
    rebuilt = json.loads(out[out.index("{") :])
    assert rebuilt["id"] == server["id"]
    shown = osc_json(env, "server", "show", server["id"])
    assert shown["status"] == "ACTIVE" and shown["OS-EXT-STS:task_state"] is None
    assert shown["name"] == "rb1-new"
    assert second in str(shown["image"])
    assert "role" in str(shown["properties"])
    assert shown["addresses"] == server["addresses"]

    console = run_client(env, "openstack", "console", "log", "show", server["id"]).stdout
    lines = console.splitlines()
    assert "image=second" in lines and lines.count("hostname=rb1") == 2

    actions = osc_json(env, "server", "event", "list", server["id"])
    assert [a["Action"] for a in actions] == ["rebuild", "create"]
