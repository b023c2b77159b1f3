"""Abuse of the compute API by a member (issue 12): a catastrophic `name` regex, oversized
bodies, choosing the host, host names in faults, and parallel console connects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mininova.compute import name_filter
from mininova.controller import Controller
from mininova.store import instances
from tests.conftest import ApiClient
from tests.console import conftest as console_conftest
from tests.console.conftest import ConsoleEnv, token_of
from tests.console.rfbclient import connect, rfb_handshake
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"
# Catastrophic backtracking for Python's `re` on these names (2^22 paths each, seconds per
# name); `^(a+)+$` is the example (the `regex` engine answers it at once).
EVIL = "^(a|a)*$"
EVIL_NAME = "a" * 22 + "!"


async def _create(api: ApiClient, image: str, **server: Any) -> tuple[int, Any]:
    body: dict[str, Any] = {
        "server": {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "none"}
    }
    hints = server.pop("hints", None)
    body["server"].update(server)
    if hints is not None:
        body["os:scheduler_hints"] = hints
    status, answer, _ = await api.post(SERVERS, json=body, version="2.74")
    return status, answer


# ------------------------------------------------------------------- 1. the name filter


async def test_name_regex_cannot_freeze_the_api(
    api: ApiClient, member_api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(name_filter, "MATCH_BUDGET", 0.5)
    image = await member_api.upload_image()
    status, body = await _create(member_api, image, name=EVIL_NAME, min_count=3, max_count=3)
    assert status == 202, body

    # The filter request has its rows; while its pattern runs, the API keeps answering.
    listed = asyncio.Event()
    real_list = instances.list_instances

    async def list_and_tell(*args: Any, **kw: Any) -> list[Any]:
        rows = await real_list(*args, **kw)
        if kw.get("project_id") == member_api.project_id:
            listed.set()
        return rows

    monkeypatch.setattr(instances, "list_instances", list_and_tell)
    evil = asyncio.create_task(member_api.get(f"{SERVERS}?name={EVIL}"))
    await asyncio.wait_for(listed.wait(), 10)
    status, root, _ = await api.get("/", token=False)
    assert status == 200 and root["name"] == "mininova"
    assert not evil.done(), "the root document came only after the name filter"
    status, error, _ = await evil
    assert status == 400, error
    assert "name" in error["badRequest"]["message"]

    # Member and admin, /servers and /servers/detail: a clear 400, never a frozen loop.
    status, listing, _ = await member_api.get(f"{SERVERS}?name=^(a%2B)%2B$")
    assert (status, listing["servers"]) == (200, []), listing
    answers = await asyncio.gather(
        member_api.get(f"{SERVERS}/detail?name={EVIL}"),
        api.get(f"{SERVERS}?all_tenants=1&name={EVIL}"),
        api.get(f"{SERVERS}/detail?all_tenants=1&name={EVIL}"),
    )
    assert [a[0] for a in answers] == [400, 400, 400], [a[1] for a in answers]

    # Nova's semantics stay: re.search anywhere in the name; a bad or too long pattern is 400.
    status, listing, _ = await member_api.get(f"{SERVERS}?name=a!-2")
    assert [s["name"] for s in listing["servers"]] == [EVIL_NAME + "-2"]
    status, error, _ = await member_api.get(f"{SERVERS}?name=(")
    assert status == 400 and "is not a 'regex'" in error["badRequest"]["message"], error
    status, error, _ = await member_api.get(f"{SERVERS}?name={'a' * 256}")
    assert status == 400 and "255" in error["badRequest"]["message"], error


# ----------------------------------------------------------------------- 2. body limits


async def _chunked(size: int) -> AsyncIterator[bytes]:
    """A body of `size` bytes with no Content-Length (chunked), as an abuser would send."""
    piece = b"x" * 65536
    sent = 0
    while sent < size:
        yield piece
        sent += len(piece)


async def test_request_bodies_are_bounded(
    api: ApiClient, member_api: ApiClient, controller: Controller
) -> None:
    big = {"server": {"name": "x" * 200_000, "imageRef": "x", "flavorRef": "1"}}
    status, error, _ = await member_api.post(SERVERS, json=big)
    assert status == 413, error
    assert error["overLimit"]["code"] == 413
    # Before any check, without Content-Length: refused once the limit is passed, not read.
    status, error, _ = await member_api.post(
        f"{SERVERS}/00000000-0000-0000-0000-000000000000/remote-consoles",
        data=_chunked(4 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
        version="2.6",
    )
    assert status == 413, error
    assert error["overLimit"]["message"] == "Request is too large."
    # Keystone's shape under /identity, before any authentication.
    async with api.session.post(
        api.base + "/identity/v3/auth/tokens",
        data=b'{"auth": "' + b"y" * 200_000 + b'"}',
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == 413
    # Image data streams and is not held to the JSON limit.
    image = await member_api.upload_image(data=b"z" * 300_000)
    status, shown, _ = await member_api.get(f"/image/v2/images/{image}")
    assert (status, shown["size"]) == (200, 300_000)
    await _split_body_is_read_whole(controller)


async def _split_body_is_read_whole(controller: Controller) -> None:
    """A body that arrives in two TCP segments with a pause between is read to its end."""
    creds = controller.credentials
    assert creds is not None
    body = json.dumps(
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": creds.username,
                            "domain": {"name": "Default"},
                            "password": creds.password,
                        }
                    },
                },
                "scope": {"project": {"name": creds.project, "domain": {"name": "Default"}}},
            }
        }
    ).encode()
    host, port = controller.config.listen_host, controller.config.listen_port
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        "POST /identity/v3/auth/tokens HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + body[:40])
    await writer.drain()
    await asyncio.sleep(0.2)  # the scenario: the rest of the body comes later
    writer.write(body[40:])
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.split()[1] == b"201", status_line


# ------------------------------------- 3. choosing a host, 4. faults name no host

HOST = "rack7-node3"


async def test_member_neither_chooses_nor_sees_hosts(
    api: ApiClient, member_api: ApiClient, controller: Controller, tmp_path: Path
) -> None:
    """One cloud with one fake host for both scenarios (a controller less in CI)."""
    async with fake_agent(controller, tmp_path, HOST, api):
        await _member_cannot_choose_the_host(api, member_api)
        await _member_fault_names_no_host(api, member_api, controller)


async def _member_cannot_choose_the_host(api: ApiClient, member_api: ApiClient) -> None:
    image = await member_api.upload_image()
    forced = "Policy doesn't allow os_compute_api:servers:create:forced_host to be performed."
    destination = (
        "Policy doesn't allow os_compute_api:servers:create:requested_destination to be performed."
    )
    for attempt, message in (
        ({"hints": {"force_host": HOST}}, forced),
        ({"availability_zone": f"nova:{HOST}"}, forced),
        ({"availability_zone": f"nova::{HOST}"}, forced),
        ({"host": HOST}, destination),
        ({"hypervisor_hostname": HOST}, destination),
    ):
        status, error = await _create(member_api, image, **attempt)
        assert status == 403, (attempt, error)
        assert error["forbidden"]["message"] == message, attempt
    status, body = await _create(member_api, image, availability_zone="nova")
    assert status == 202, body
    # An admin's "zone:host" pins the build to that host, as in Nova.
    admin_image = await api.upload_image()
    status, body = await _create(api, admin_image, availability_zone="nova:elsewhere")
    assert status == 202, body
    server = await api.wait_server(body["server"]["id"], "ERROR", "ACTIVE")
    assert server["status"] == "ERROR", server
    assert "not the requested host" in server["fault"]["message"]
    status, error = await _create(api, admin_image, hypervisor_hostname="nowhere")
    assert (status, error["badRequest"]["message"]) == (
        400,
        "Compute host nowhere could not be found.",
    )


async def _member_fault_names_no_host(
    api: ApiClient, member_api: ApiClient, controller: Controller
) -> None:
    status, flavor, _ = await api.post(
        "/compute/v2.1/flavors",
        json={"flavor": {"name": "huge", "ram": 64, "vcpus": 1, "disk": 100_000}},
    )
    assert status == 200, flavor
    image = await member_api.upload_image()
    uuids = []
    for _ in range(2):
        status, body = await _create(member_api, image, flavorRef=flavor["flavor"]["id"])
        assert status == 202, body
        uuids.append(body["server"]["id"])
    for server_id in uuids:
        await member_api.wait_server(server_id, "ERROR")
    # The conductor's fault of a guest that vanished from its host, on the second server.
    gone = uuids[1]
    message = f"Instance {gone} vanished from its host {HOST}."
    await instances.update(controller.store, gone, host=HOST, fault=instances.fault(message))

    for server_id in uuids:
        _, admin_view, _ = await api.get(f"{SERVERS}/{server_id}")
        assert HOST in admin_view["server"]["fault"]["message"]
        assert HOST in admin_view["server"]["fault"]["details"]
        _, member_view, _ = await member_api.get(f"{SERVERS}/{server_id}")
        fault = member_view["server"]["fault"]
        assert HOST not in json.dumps(fault), fault
        assert "details" not in fault
        assert fault["message"].startswith(("No valid host was found.", f"Instance {gone}"))
    _, listing, _ = await member_api.get(f"{SERVERS}/detail")
    assert HOST not in json.dumps([s.get("fault") for s in listing["servers"]])


# ------------------------------------------------------------- 5. console session limits


# The console tests' fixture: the controller plus an in-process fake-driver agent.
console_env = console_conftest.env


async def test_parallel_console_connects_respect_the_limit(console_env: ConsoleEnv) -> None:
    env = console_env
    config = env.controller.config
    config.console_single_use = True
    config.console_max_sessions_per_instance = 2
    uuid = await env.server("limited")
    tokens = [token_of(await env.console_url(uuid)) for _ in range(6)]
    async with aiohttp.ClientSession() as session:

        async def attempt(token: str) -> Any:
            try:
                ws = await connect(session, env.ws_url(token), headers={"Origin": env.base})
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await rfb_handshake(ws)
            return ws

        results = await asyncio.gather(*(attempt(t) for t in tokens))
        opened = [r for r in results if not isinstance(r, int)]
        refused = [r for r in results if isinstance(r, int)]
        assert (len(opened), refused) == (2, [429] * 4), results
        assert env.controller.consoleproxy.per_instance[uuid] == 2
        for ws in opened:
            await ws.close()
    await wait_for(lambda: not env.controller.consoleproxy.sessions, 5, message="sessions end")


async def test_one_project_cannot_take_every_console(
    console_env: ConsoleEnv, member_api: ApiClient
) -> None:
    """console_max_sessions_per_project: the admin project's third console is refused (429)
    while another project's console on the same controller still opens."""
    env = console_env
    env.controller.config.console_max_sessions_per_project = 2
    ours = [await env.server("ours-a"), await env.server("ours-b")]
    theirs = await _member_server(env, member_api)
    async with aiohttp.ClientSession() as session:

        async def open_console(uuid: str, api: ApiClient | None = None) -> Any:
            url = env.ws_url(token_of(await env.console_url(uuid, api=api)))
            try:
                ws = await connect(session, url, headers={"Origin": env.base})
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            await rfb_handshake(ws)
            return ws

        first = await open_console(ours[0])
        second = await open_console(ours[1])
        third = await open_console(ours[0])
        other = await open_console(theirs, api=member_api)
        assert third == 429, third
        opened = [first, second, other]
        assert not any(isinstance(ws, int) for ws in opened), opened
        for ws in opened:
            await ws.close()
    await wait_for(lambda: not env.controller.consoleproxy.sessions, 5, message="sessions end")
    assert not env.controller.consoleproxy.per_project


async def _member_server(env: ConsoleEnv, member_api: ApiClient) -> str:
    """An ACTIVE server of the member's project, from an image of its own."""
    status, image, _ = await member_api.post(
        "/image/v2/images", json={"name": "img", "disk_format": "qcow2", "container_format": "bare"}
    )
    assert status == 201, image
    status, _, _ = await member_api.put(
        f"/image/v2/images/{image['id']}/file",
        data=b"x" * 1024,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 204
    server = {"name": "theirs", "imageRef": image["id"], "flavorRef": "1", "networks": "none"}
    status, body, _ = await member_api.post(
        "/compute/v2.1/servers", json={"server": server}, version="2.37"
    )
    assert status == 202, body
    await env.wait_status(body["server"]["id"], "ACTIVE")
    return body["server"]["id"]
