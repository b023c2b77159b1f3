"""os-server-password: GET shows the stored password ("" when none), DELETE clears it.

The password lives in the instance's system_metadata as Nova keeps it (password_0..3, 255
characters each); what stores it (Nova's metadata-service POST from the guest) is not served
here, so the tests store one below the API, as that POST would.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import openstack
import pytest

from mininova.compute import server_password
from mininova.controller import Controller
from mininova.store import instances
from tests.api.cli import cli_env
from tests.conftest import ApiClient

SERVERS = "/compute/v2.1/servers"
# What a guest agent posts: base64 of the RSA-encrypted password (longer than one chunk).
ENCRYPTED = "xTq3" * 150


async def _server(api: ApiClient, name: str = "vm") -> str:
    image = await api.upload_image()
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    status, created, _ = await api.post(SERVERS, json=body, version="2.100")
    assert status == 202, created
    return created["server"]["id"]


async def _password(api: ApiClient, uuid: str, version: str | None = None) -> tuple[int, dict]:
    status, body, _ = await api.get(f"{SERVERS}/{uuid}/os-server-password", version=version)
    return status, body


async def test_show_and_clear(api: ApiClient, controller: Controller) -> None:
    uuid = await _server(api)
    assert await _password(api, uuid) == (200, {"password": ""})

    await server_password.set_password(controller.store, uuid, ENCRYPTED)
    stored = (await instances.get(controller.store, uuid))["system_metadata"]
    assert [stored[k] for k in ("password_0", "password_1", "password_2", "password_3")] == [
        ENCRYPTED[:255],
        ENCRYPTED[255:510],
        ENCRYPTED[510:],
        "",
    ]
    for version in ("2.1", "2.100"):
        assert await _password(api, uuid, version) == (200, {"password": ENCRYPTED})

    status, body, _ = await api.delete(f"{SERVERS}/{uuid}/os-server-password")
    assert (status, body) == (204, None)
    assert await _password(api, uuid) == (200, {"password": ""})
    # Clearing empties the chunks, as Nova does.
    stored = (await instances.get(controller.store, uuid))["system_metadata"]
    assert all(stored[f"password_{i}"] == "" for i in range(4))


async def test_project_scoped_owner_or_admin(
    api: ApiClient, member_api: ApiClient, controller: Controller
) -> None:
    theirs = await _server(api, "admin-vm")
    await server_password.set_password(controller.store, theirs, ENCRYPTED)
    assert (await _password(member_api, theirs))[0] == 404
    status, _, _ = await member_api.delete(f"{SERVERS}/{theirs}/os-server-password")
    assert status == 404
    assert await _password(api, theirs) == (200, {"password": ENCRYPTED})

    mine = await _server(member_api, "member-vm")
    await server_password.set_password(controller.store, mine, "c2VjcmV0")
    assert await _password(member_api, mine) == (200, {"password": "c2VjcmV0"})
    # The admin sees and clears any project's server password.
    assert await _password(api, mine) == (200, {"password": "c2VjcmV0"})
    status, _, _ = await member_api.delete(f"{SERVERS}/{mine}/os-server-password")
    assert status == 204
    assert await _password(api, mine) == (200, {"password": ""})

    missing = "00000000-0000-4000-8000-000000000000"
    assert (await _password(api, missing))[0] == 404


@pytest.mark.first_backend_only
async def test_openstacksdk_get_and_clear(api: ApiClient, controller: Controller) -> None:
    uuid = await _server(api, "sdkvm")
    await server_password.set_password(controller.store, uuid, ENCRYPTED)
    creds = controller.credentials
    assert creds is not None

    def sdk() -> tuple[str | None, str | None]:
        conn = openstack.connect(
            auth_url=controller.config.base_url + "/identity/v3",
            username=creds.username,
            password=creds.password,
            project_name=creds.project,
            user_domain_name="Default",
            project_domain_name="Default",
            region_name=controller.config.region,
        )
        try:
            before = conn.compute.get_server_password(uuid)
            conn.compute.clear_server_password(uuid)
            return before, conn.compute.get_server_password(uuid)
        finally:
            conn.close()

    before, after = await asyncio.to_thread(sdk)
    assert before == ENCRYPTED
    assert after == ""


def test_password_chunks_bounds() -> None:
    assert server_password.extract_password(server_password.password_chunks("abc")) == "abc"
    assert server_password.password_chunks(None) == {f"password_{i}": "" for i in range(4)}
    with pytest.raises(ValueError):
        server_password.password_chunks("x" * (4 * 255 + 1))


@pytest.mark.first_backend_only
async def test_novaclient_get_and_clear_password(api: ApiClient, controller: Controller) -> None:
    """`nova get-password` (no private key: the stored text) and `nova clear-password`."""
    uuid = await _server(api, "novavm")
    await server_password.set_password(controller.store, uuid, ENCRYPTED)

    async def nova(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "nova"),
            *args,
            env=cli_env(controller),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        return out.decode()

    assert (await nova("get-password", uuid)).strip() == ENCRYPTED
    await nova("clear-password", uuid)
    assert await _password(api, uuid) == (200, {"password": ""})
