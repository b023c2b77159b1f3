"""An instructor sets up a class with the identity commands of the real `openstack` CLI."""

from __future__ import annotations

import json

from mininova.controller import Controller
from tests.api.cli import run_openstack


async def _ok(controller: Controller, *args: str, **kw: str) -> str:
    rc, out, err = await run_openstack(controller, *args, **kw)
    assert rc == 0, f"openstack {' '.join(args)} failed: {err}"
    return out


async def test_class_setup_and_teardown(controller: Controller) -> None:
    await _ok(controller, "project", "create", "--description", "Lab A", "labA")
    await _ok(controller, "user", "create", "--project", "labA", "--password", "pw1", "alice")
    await _ok(controller, "role", "add", "--project", "labA", "--user", "alice", "member")
    projects = json.loads(await _ok(controller, "project", "list", "-f", "json"))
    assert "labA" in {p["Name"] for p in projects}
    users = json.loads(await _ok(controller, "user", "list", "-f", "json"))
    assert "alice" in {u["Name"] for u in users}
    assignments = json.loads(
        await _ok(
            controller, "role", "assignment", "list", "--names", "--user", "alice", "-f", "json"
        )
    )
    assert [(a["Role"], a["Project"]) for a in assignments] == [("member", "labA@Default")]

    # alice can log in and work in her project, but cannot administer identities.
    out = await _ok(
        controller, "server", "list", "-f", "json", user="alice", password="pw1", project="labA"
    )
    assert json.loads(out) == []
    rc, _, err = await run_openstack(
        controller, "user", "list", user="alice", password="pw1", project="labA"
    )
    assert rc != 0 and "403" in err

    await _ok(controller, "role", "remove", "--project", "labA", "--user", "alice", "member")
    rc, _, err = await run_openstack(
        controller, "server", "list", user="alice", password="pw1", project="labA"
    )
    assert rc != 0 and "401" in err
    await _ok(controller, "user", "delete", "alice")
    await _ok(controller, "project", "delete", "labA")
    projects = json.loads(await _ok(controller, "project", "list", "-f", "json"))
    assert "labA" not in {p["Name"] for p in projects}
