"""What the dashboard tests share besides the browser: accounts and the real CLI."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from tests.e2e.procs import run_client
from tests.libvirt_e2e.conftest import Cloud
from tests.libvirt_e2e.host import host_skip_reason
from tests.ui.dashboard import dashboard_skip_reason

FLAVOR = "m1.micro"  # the tiny guest's SYSLINUX needs more than m1.nano's 64 MiB


def ui_skip_reason() -> str | None:
    return dashboard_skip_reason() or host_skip_reason()


@dataclass
class Account:
    user: str
    password: str
    project: str


async def cli(cloud: Cloud, *args: str, account: Account | None = None, check: bool = True) -> Any:
    """`openstack ARGS` (admin, or `account`), off the event loop so the browser keeps going."""
    env = (
        cloud.env
        if account is None
        else cloud.serve.os_env(account.user, account.password, account.project)
    )
    return await asyncio.to_thread(run_client, env, "openstack", *args, check=check)


async def cli_json(cloud: Cloud, *args: str, account: Account | None = None) -> Any:
    return json.loads((await cli(cloud, *args, "-f", "json", account=account)).stdout)
