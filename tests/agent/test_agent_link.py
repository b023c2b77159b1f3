"""The agent against a stand-in controller: hello, orders, garbage, reconnect, bad token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mininova.agent import Agent, run_agent, tunnel
from mininova.agent.identity import AgentRefused
from mininova.agent.link import Backoff, agent_ws_url
from mininova.protocol import PROTOCOL_VERSION, ProtocolError
from mininova.virt.driver import RUNNING, SHUTDOWN, ConsoleEndpoint
from mininova.virt.fake import FakeDriver
from tests.kit.wait import wait_for

from .conftest import FakeController, Running, agent_config, instance_dict


async def first_conn(ctl: FakeController):
    conn = await asyncio.wait_for(ctl.conns.get(), 5)
    hello = await asyncio.wait_for(ctl.hellos.get(), 5)
    return conn, hello


async def test_hello_and_orders(ctl: FakeController, running: Running) -> None:
    conn, hello = await first_conn(ctl)
    assert hello["host"] == "node1"
    assert hello["driver"] == "fake"
    assert hello["protocol"] == PROTOCOL_VERSION
    assert hello["guests"] == []
    assert hello["resources"]["hypervisor_type"] == "fake"
    assert hello["resources"]["vcpus"] == 16
    await asyncio.wait_for(running.agent.connected.wait(), 2)

    spec = instance_dict()
    uuid = spec["uuid"]
    info = await conn.call("spawn", {"instance": spec})
    assert info["uuid"] == uuid
    assert info["power_state"] == RUNNING
    assert info["domain_name"] == "instance-00000001"
    assert info["addresses"][0]["addr"].startswith("10.0.")
    event = await asyncio.wait_for(ctl.events.get(), 2)
    assert event == {"uuid": uuid, "power_state": RUNNING}

    assert (await conn.call("get_info", {"uuid": uuid}))["power_state"] == RUNNING
    off = await conn.call("power_off", {"uuid": uuid})
    assert off["power_state"] == SHUTDOWN
    assert await asyncio.wait_for(ctl.events.get(), 2) == {"uuid": uuid, "power_state": SHUTDOWN}

    full = (await conn.call("console_output", {"uuid": uuid, "length": None}))["output"]
    assert "mininova fake guest" in full and f"uuid={uuid}" in full
    tail = (await conn.call("console_output", {"uuid": uuid, "length": 1}))["output"]
    assert tail == full.splitlines()[-1]
    assert "shutdown" in tail

    guests = await conn.call("list_guests")
    assert [(g["uuid"], g["power_state"]) for g in guests] == [(uuid, SHUTDOWN)]
    res = await conn.call("host_resources")
    assert res["vcpus_used"] == 1 and res["memory_mb_used"] == 512

    assert (await conn.call("power_on", {"uuid": uuid}))["power_state"] == RUNNING
    assert (await conn.call("reboot", {"uuid": uuid, "hard": True}))["power_state"] == RUNNING

    # a heartbeat carries resources and the guest list
    await wait_for(lambda: any(hb["guests"] for hb in ctl.heartbeats), 3, message="a heartbeat")
    hb = next(hb for hb in ctl.heartbeats if hb["guests"])
    assert hb["guests"][0]["uuid"] == uuid and hb["resources"]["vcpus_used"] == 1

    assert await conn.call("destroy", {"uuid": uuid}) == {}
    assert await conn.call("destroy", {"uuid": uuid}) == {}  # already gone: still fine
    assert await conn.call("list_guests") == []


async def test_order_errors(ctl: FakeController, running: Running) -> None:
    conn, _ = await first_conn(ctl)
    with pytest.raises(ProtocolError) as err:
        await conn.call("get_info", {"uuid": "nope"})
    assert err.value.code == "not_found"
    with pytest.raises(ProtocolError) as err:
        await conn.call("power_off", {"uuid": "nope"})
    assert err.value.code == "not_found"
    with pytest.raises(ProtocolError) as err:
        await conn.call("get_info", {})
    assert err.value.code == "invalid_params"
    bad = instance_dict()
    del bad["flavor"]
    with pytest.raises(ProtocolError) as err:
        await conn.call("spawn", {"instance": bad})
    assert err.value.code == "invalid_params" and "flavor" in err.value.message
    with pytest.raises(ProtocolError) as err:
        await conn.call("spawn", {"instance": instance_dict(metadata={"fake_fail_spawn": "1"})})
    assert err.value.code == "failed" and "fake spawn failure" in err.value.message
    with pytest.raises(ProtocolError) as err:
        await conn.call("console_output", {"uuid": "x", "length": -1})
    assert err.value.code == "invalid_params"
    with pytest.raises(ProtocolError) as err:
        await conn.call("reboot", {"uuid": "x", "hard": "yes"})
    assert err.value.code == "invalid_params"
    spec = instance_dict()
    await conn.call("spawn", {"instance": spec})
    await conn.call("power_off", {"uuid": spec["uuid"]})
    with pytest.raises(ProtocolError) as err:
        await conn.call("pause", {"uuid": spec["uuid"]})
    assert err.value.code == "failed"
    with pytest.raises(ProtocolError) as err:
        await conn.call("make_coffee", {})
    assert err.value.code == "unknown_method"
    assert await conn.call("list_guests") != []  # still alive


async def test_garbage_frames_are_answered_and_survived(
    ctl: FakeController, running: Running
) -> None:
    conn, _ = await first_conn(ctl)

    def error_with(code: str, frame_id=None):
        return lambda f: (
            isinstance(f, dict)
            and f.get("id") == frame_id
            and isinstance(f.get("error"), dict)
            and f["error"]["code"] == code
        )

    await conn.ws.send_str("not json")
    await conn.expect(error_with("parse_error"))
    await conn.ws.send_str("[1,2]")
    await conn.expect(error_with("invalid_frame"))
    await conn.ws.send_bytes(b"\xff\xfe\x00garbage")
    await conn.ws.send_str(json.dumps({"v": 1, "id": "abc", "method": "list_guests"}))
    await conn.ws.send_str(json.dumps({"v": 7, "id": 901, "method": "list_guests"}))
    await conn.expect(error_with("unsupported_version", 901))
    await conn.ws.send_str(
        json.dumps({"v": 1, "id": 902, "method": "get_info", "params": {"uuid": 5}})
    )
    await conn.expect(error_with("invalid_params", 902))
    await conn.ws.send_str(
        json.dumps({"v": 1, "id": 903, "method": "spawn", "params": {"instance": [1]}})
    )
    await conn.expect(error_with("invalid_params", 903))
    await conn.ws.send_str(json.dumps({"v": 1, "id": 904, "method": "list_guests", "params": "x"}))
    await conn.expect(error_with("invalid_params", 904))
    await conn.ws.send_str(json.dumps({"v": 1, "id": 905}))
    await conn.expect(error_with("invalid_frame", 905))
    # no id: a notification, never answered, never fatal
    await conn.ws.send_str(json.dumps({"v": 1, "method": "get_info", "params": {}}))
    # a reply nobody asked for is dropped silently
    await conn.ws.send_str(json.dumps({"v": 1, "id": 77777, "result": {}}))
    await conn.ws.send_str(
        json.dumps(
            {
                "v": 1,
                "id": 906,
                "method": "spawn",
                "params": {
                    "instance": instance_dict(
                        flavor={"id": "1", "name": "x", "vcpus": "2", "ram_mb": 1, "disk_gb": 1}
                    )
                },
            }
        )
    )
    reply = await conn.expect(error_with("invalid_params", 906))
    assert "instance.flavor.vcpus" in reply["error"]["message"]

    assert await conn.call("list_guests") == []
    assert not running.task.done()
    assert ctl.conns.empty()  # the same link survived all of it


async def test_reconnect_resyncs_and_inflight_order_finishes(
    ctl: FakeController, running: Running
) -> None:
    conn, _ = await first_conn(ctl)
    spec = instance_dict()
    uuid = spec["uuid"]
    await conn.call("spawn", {"instance": spec})
    await asyncio.wait_for(ctl.events.get(), 2)

    await conn.ws.close()
    conn2, hello2 = await first_conn(ctl)
    assert [(g["uuid"], g["power_state"]) for g in hello2["guests"]] == [(uuid, RUNNING)]
    await wait_for(lambda: running.agent.sessions == 2, 2, message="the second session")

    # an order still running when the link drops is finished, not cancelled
    running.driver.boot_seconds = 0.8
    spawning = asyncio.Event()
    real_spawn = running.driver.spawn

    async def spawn_and_tell(spec):  # noqa: ANN001, ANN202
        spawning.set()
        return await real_spawn(spec)

    running.driver.spawn = spawn_and_tell  # type: ignore[method-assign]
    slow = instance_dict(domain_name="instance-00000002")
    spawn = asyncio.create_task(conn2.call("spawn", {"instance": slow}))
    await asyncio.wait_for(spawning.wait(), 2)  # the order is in the driver
    await conn2.ws.close()
    with pytest.raises(ProtocolError):
        await spawn
    conn3, _ = await first_conn(ctl)

    async def both_guests() -> list | None:
        guests = await conn3.call("list_guests")
        return guests if len(guests) == 2 else None

    guests = await wait_for(both_guests, 3, 0.05, "the in-flight spawn to finish")
    assert {g["uuid"] for g in guests} == {uuid, slow["uuid"]}
    # and its power event reaches the controller over the new link
    event = await asyncio.wait_for(ctl.events.get(), 2)
    assert event == {"uuid": slow["uuid"], "power_state": RUNNING}


async def test_guest_events_and_console_tunnel(
    ctl: FakeController, running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, _ = await first_conn(ctl)
    spec = instance_dict()
    uuid = spec["uuid"]
    await conn.call("spawn", {"instance": spec})
    await asyncio.wait_for(ctl.events.get(), 2)
    await running.driver.fake_guest_poweroff(uuid)
    assert await asyncio.wait_for(ctl.events.get(), 2) == {"uuid": uuid, "power_state": SHUTDOWN}
    await conn.call("power_on", {"uuid": uuid})

    seen: list[tuple[str, str, ConsoleEndpoint]] = []

    async def fake_open_tunnel(
        url: str, token: str, endpoint: ConsoleEndpoint, access: object
    ) -> None:
        seen.append((url, token, endpoint))
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        assert await reader.readexactly(12) == b"RFB 003.008\n"
        writer.close()

    monkeypatch.setattr(tunnel, "open_tunnel", fake_open_tunnel)
    params = {
        "uuid": uuid,
        "tunnel_url": "ws://127.0.0.1:1/console/tunnel/abc",
        "tunnel_token": "tt",
    }
    assert await conn.call("open_console_tunnel", params) == {}
    assert seen[0][:2] == ("ws://127.0.0.1:1/console/tunnel/abc", "tt")

    async def broken(url: str, token: str, endpoint: ConsoleEndpoint, access: object) -> None:
        raise ConnectionRefusedError("nobody home")

    monkeypatch.setattr(tunnel, "open_tunnel", broken)
    with pytest.raises(ProtocolError) as err:
        await conn.call("open_console_tunnel", params)
    assert err.value.code == "failed" and "nobody home" in err.value.message
    with pytest.raises(ProtocolError) as err:
        await conn.call("open_console_tunnel", {**params, "uuid": "missing"})
    assert err.value.code == "not_found"


async def test_refused_join_token_stops_the_agent(
    ctl: FakeController, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 cannot be fixed by retrying: the agent stops once, with the reason."""
    driver = FakeDriver(boot_seconds=0.01)
    agent = Agent(agent_config(ctl, tmp_path, token="wrong", reconnect_max_backoff=0.2), driver)
    with pytest.raises(AgentRefused, match="controller refused the join token"):
        await asyncio.wait_for(agent.run(), 5)
    assert len(ctl.rejected) == 1 and ctl.hellos.empty()
    assert "stops: controller refused the join token" in caplog.text


async def test_unreachable_controller_keeps_retrying(tmp_path: Path) -> None:
    ctl = FakeController()
    ctl.port = 9  # nothing listens on the discard port here
    agent = Agent(agent_config(ctl, tmp_path, reconnect_max_backoff=0.1), FakeDriver())
    task = asyncio.create_task(agent.run())
    # Real time on purpose: the agent must still be retrying after several backoff periods.
    await asyncio.sleep(0.4)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_run_agent_and_clean_shutdown(
    ctl: FakeController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[str] = []
    for name in ("destroy", "power_off", "suspend", "pause"):

        async def record(self: FakeDriver, uuid: str, _name: str = name) -> None:
            touched.append(_name)

        monkeypatch.setattr(FakeDriver, name, record)
    task = asyncio.create_task(run_agent(agent_config(ctl, tmp_path)))
    conn, hello = await first_conn(ctl)
    assert hello["driver"] == "fake"
    spec = instance_dict()
    await conn.call("spawn", {"instance": spec})
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
    await asyncio.wait_for(conn.closed.wait(), 5)
    assert touched == []  # stopping the agent never touches guests


def test_ws_url_and_backoff() -> None:
    assert agent_ws_url("http://ctl:8780") == "ws://ctl:8780/agent"
    assert agent_ws_url("https://ctl/") == "wss://ctl/agent"
    assert agent_ws_url("https://ctl/nova") == "wss://ctl/nova/agent"
    assert agent_ws_url("ws://ctl:1/agent") == "ws://ctl:1/agent"
    with pytest.raises(ValueError):
        agent_ws_url("ctl:8780")
    backoff = Backoff(10.0)
    steps = [0.5, 1, 2, 4, 8, 10, 10]
    for step in steps:
        assert step / 2 <= backoff.next() <= step
    backoff.reset()
    assert backoff.next() <= 0.5
