"""The real `openstack` CLI with project tags and the token method (keystoneauth's v3token)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mininova.controller import Controller
from tests.api.cli import OPENSTACK, cli_env, run_openstack
from tests.conftest import ApiClient
from tests.identity.helpers import grant, new_project, new_user, whoami


async def _json(controller: Controller, *args: str, **kw: Any) -> Any:
    rc, out, err = await run_openstack(controller, *args, "-f", "json", **kw)
    assert rc == 0, f"openstack {' '.join(args)} failed: {err}"
    return json.loads(out)


async def _ok(controller: Controller, *args: str) -> None:
    rc, _, err = await run_openstack(controller, *args)
    assert rc == 0, f"openstack {' '.join(args)} failed: {err}"


async def _with_token(
    controller: Controller, token: str, project: str, *args: str
) -> tuple[int, str, str]:
    """`openstack *args` authenticated by keystoneauth's v3token plugin: it rescopes `token`
    to `project` with the token method, then runs the command with the new token."""
    env = cli_env(controller, project=project)
    for name in ("OS_USERNAME", "OS_PASSWORD", "OS_USER_DOMAIN_NAME"):
        env.pop(name)
    env.update(OS_AUTH_TYPE="v3token", OS_TOKEN=token)
    proc = await asyncio.create_subprocess_exec(
        OPENSTACK,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode()


async def test_the_cli_rescopes_a_token(controller: Controller, api: ApiClient) -> None:
    class1 = await new_project(api, "class1")
    lab2 = await new_project(api, "lab2", tags=["lab"])
    await new_project(api, "exam3")
    student = await new_user(api, "student1", class1, "member")
    await grant(api, lab2["id"], student.user_id, "member")
    original = await whoami(api, student.token)

    rc, out, err = await _with_token(
        controller, student.token, "lab2", "token", "issue", "-f", "json"
    )
    assert rc == 0, err
    issued = json.loads(out)
    assert issued["project_id"] == lab2["id"] and issued["user_id"] == student.user_id
    assert issued["id"] != student.token
    rescoped = await whoami(api, issued["id"])
    assert rescoped["expires_at"] == original["expires_at"]
    assert rescoped["methods"] == ["token", "password"]

    rc, out, err = await _with_token(
        controller, student.token, "lab2", "project", "show", lab2["id"], "-f", "json"
    )
    assert rc == 0, err
    assert json.loads(out)["tags"] == ["lab"]

    rc, _, err = await _with_token(controller, student.token, "exam3", "token", "issue")
    assert rc != 0 and "401" in err, err


async def test_project_tags_with_the_cli(controller: Controller) -> None:
    created = await _json(controller, "project", "create", "--tag", "x", "p1")
    assert created["name"] == "p1" and created["tags"] == ["x"], created
    await _json(controller, "project", "create", "--tag", "y", "p2")

    listed = await _json(controller, "project", "list", "--tags", "x")
    assert [p["Name"] for p in listed] == ["p1"], listed
    listed = await _json(controller, "project", "list", "--not-tags", "x")
    assert "p1" not in {p["Name"] for p in listed} and "p2" in {p["Name"] for p in listed}

    shown = await _json(controller, "project", "show", "p1")
    assert shown["id"] == created["id"] and shown["tags"] == ["x"], shown

    await _ok(controller, "project", "set", "--tag", "z", "p1")
    assert (await _json(controller, "project", "show", "p1"))["tags"] == ["x", "z"]
    await _ok(controller, "project", "set", "--remove-tag", "x", "p1")
    assert (await _json(controller, "project", "show", "p1"))["tags"] == ["z"]
    listed = await _json(controller, "project", "list", "--tags-any", "y,z")
    assert {p["Name"] for p in listed} == {"p1", "p2"}
