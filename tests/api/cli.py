"""Run the real `openstack` CLI against an in-process controller (without blocking the loop)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

OPENSTACK = str(Path(sys.executable).parent / "openstack")


def cli_env(
    controller: Any,
    user: str | None = None,
    password: str | None = None,
    project: str | None = None,
) -> dict[str, str]:
    """Environment for an OSC subprocess: only our OS_* variables, admin by default."""
    creds = controller.credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(
        {
            "OS_AUTH_URL": controller.config.base_url + "/identity/v3",
            "OS_USERNAME": user or creds.username,
            "OS_PASSWORD": password if password is not None else creds.password,
            "OS_PROJECT_NAME": project or creds.project,
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": controller.config.region,
            "OS_IDENTITY_API_VERSION": "3",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


async def run_openstack(
    controller: Any,
    *args: str,
    user: str | None = None,
    password: str | None = None,
    project: str | None = None,
    timeout: float = 120.0,
    cwd: str | None = None,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:
    """`openstack *args` as a subprocess; returns (returncode, stdout, stderr).

    The controller runs in this event loop, so the CLI must be awaited, never run with a
    blocking subprocess call. Add `-f json` yourself when you want to parse the output."""
    proc = await asyncio.create_subprocess_exec(
        OPENSTACK,
        *args,
        env=cli_env(controller, user, password, project),
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode()
