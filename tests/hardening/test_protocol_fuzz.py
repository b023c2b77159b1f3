"""Property tests of the agent protocol (docs/agent-protocol.md): generated malformed frames.

(a) The sans-I/O core (`mininova.protocol.core.Endpoint`) and the report checks
    (`mininova.protocol.reports`): whatever a peer sends, `receive` returns an event or an
    error reply (never raises), never answers a reply, keeps its pending calls, and a valid
    frame after garbage is handled as the spec says.
(b) A real websocket to a running controller's `/agent` endpoint with an enrolled host
    credential: generated frames are answered with an error reply or the link is closed
    with a documented code, nothing is logged with a traceback, the database stays intact
    and no instance or host row changes except as a valid frame asks, and the hub keeps
    serving a well-behaved agent meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from mininova.agent.handlers import OrderHandlers
from mininova.controller import Controller
from mininova.protocol import reports
from mininova.protocol.core import MAX_FRAME_BYTES, Endpoint, ErrorReply, Reply, Request
from mininova.protocol.peer import Peer
from mininova.store import schema
from mininova.trust import enrolment
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.hardening.fuzzing import CI, collect, examples
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

# -- strategies ---------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
methods = st.sampled_from(
    ["hello", "heartbeat", "instance_event", "spawn", "destroy", "", "nope", "__init__"]
) | st.text(max_size=12)
ids = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.just(2**53),
    st.just(True),
    st.floats(),
    st.text(max_size=5),
    st.none(),
)
# Fields of the agent's reports, valid and not.
power_states = st.one_of(st.sampled_from(sorted(reports.POWER_STATES)), json_scalars)
addresses = st.one_of(
    st.just([{"version": 4, "addr": "192.0.2.7", "mac": "52:54:00:00:00:01"}]),
    st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries({"version": json_scalars, "addr": json_scalars}),
        ),
        max_size=3,
    ),
    json_values,
)


def guests_of(uuids: list[str]) -> st.SearchStrategy[Any]:
    guest = st.fixed_dictionaries(
        {"uuid": st.sampled_from(uuids) | json_scalars},
        optional={
            "power_state": power_states,
            "addresses": addresses,
            "domain_name": json_scalars,
        },
    )
    return st.one_of(st.lists(guest | json_values, max_size=3), json_values)


def params_of(uuids: list[str]) -> st.SearchStrategy[Any]:
    """Params of the three agent->controller methods, mostly almost right."""
    text_or_junk = st.sampled_from(["fuzz1", "node1", "", " fuzz1", "f\x00z"]) | json_scalars
    resources = st.fixed_dictionaries(
        {},
        optional={
            "vcpus": json_scalars,
            "memory_mb": json_scalars,
            "local_gb": json_scalars,
            "hypervisor_version": json_scalars,
            "cpu_info": json_scalars,
            "hypervisor_type": json_scalars,
            "host_ip": json_scalars,
        },
    )
    return st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "host": text_or_junk,
                "protocol": st.just(1) | json_scalars,
                "driver": json_scalars,
                "resources": resources | json_values,
                "guests": guests_of(uuids),
            },
        ),
        st.fixed_dictionaries(
            {},
            optional={"uuid": st.sampled_from(uuids) | json_scalars, "power_state": power_states},
        ),
        json_values,
    )


def call_frames(uuids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "v": st.just(1) | json_scalars,
            "id": ids,
            "method": methods | json_scalars,
            "params": params_of(uuids),
            "result": json_values,
            "error": json_values,
            "extra": json_values,
        },
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def frames_of(uuids: list[str]) -> st.SearchStrategy[str | bytes]:
    """Whole frames: text that is not JSON, JSON of every type, near-valid calls and replies,
    deep nesting, huge numbers, binary and oversized frames."""
    return st.one_of(
        st.text(max_size=40),
        st.binary(max_size=40),
        json_values.map(json.dumps),
        call_frames(uuids).map(json.dumps),
        call_frames(uuids).map(lambda f: json.dumps(f).encode()),
        st.integers(min_value=1000, max_value=50_000).map(nested),
        st.integers(min_value=4400, max_value=6000).map(lambda n: '{"v":1,"id":' + "9" * n + "}"),
        st.just("x" * (MAX_FRAME_BYTES + 1)),
    )


# -- (a) the sans-I/O core ----------------------------------------------------------------------


def _check_answer(answer: str | None, frame: str | bytes) -> None:
    """An answer is a version-1 error reply that the other side does not answer again."""
    if answer is None:
        return
    data = json.loads(answer)
    assert data["v"] == 1 and set(data) == {"v", "id", "error"}, data
    assert isinstance(data["error"]["code"], str) and isinstance(data["error"]["message"], str)
    assert data["id"] is None or (isinstance(data["id"], int) and 0 <= data["id"] < 2**53)
    assert len(answer) < 1024, "an error reply never echoes a large frame back"
    echo = Endpoint()
    assert echo.receive(answer) == (None, None), "an error reply must not be answered"


@settings(CI)
@given(garbage=st.lists(frames_of(["u1"]), min_size=1, max_size=4))
@example(garbage=[nested(100_000)])  # RecursionError escaped receive() before the fix
@example(garbage=['{"v":1,"id":' + str(2**64) + ',"method":"heartbeat"}'])
@example(garbage=['{"v":true,"method":"heartbeat","params":{}}'])
def test_core_never_raises_and_keeps_its_calls(garbage: list[str | bytes]) -> None:
    endpoint = Endpoint()
    request_id, _ = endpoint.request("spawn", {"instance": {}})
    for frame in garbage:
        event, answer = endpoint.receive(frame)
        _check_answer(answer, frame)
        if isinstance(event, Request):
            assert 0 <= event.id < 2**53 and isinstance(event.params, dict)
            assert isinstance(event.method, str) and event.method
        if isinstance(event, Reply | ErrorReply) and event.id == request_id:
            request_id = 0  # the pending call was answered: it may go
        # a reply to an unknown call is dropped; nothing else touches the pending calls
        assert endpoint.pending == ({request_id: "spawn"} if request_id else {})
    # After garbage, valid frames are still handled as the spec says.
    event, answer = endpoint.receive('{"v":1,"id":7,"method":"heartbeat","params":{}}')
    assert event == Request(7, "heartbeat", {}) and answer is None
    if request_id:
        event, answer = endpoint.receive(json.dumps({"v": 1, "id": request_id, "result": {}}))
        assert event == Reply(request_id, {}, "spawn") and answer is None
        assert endpoint.pending == {}


@settings(CI)
@given(value=params_of(["u1"]))
def test_report_checks_never_raise_but_value_error(value: Any) -> None:
    """What reaches the conductor and the database is well-formed, or refused."""
    params = value if isinstance(value, dict) else {"guests": value, "resources": value}
    for check, arg in (
        (reports.host_name, params.get("host")),
        (reports.resources, params.get("resources")),
        (reports.guests, params.get("guests")),
    ):
        try:
            out = check(arg)
        except ValueError:
            continue
        json.dumps(out, allow_nan=False)  # JSON any database accepts
        for string in _strings(out):
            assert "\x00" not in string
    clean = (
        reports.resources(params["resources"]) if isinstance(params.get("resources"), dict) else {}
    )
    for key in reports.RESOURCE_COUNTS:
        if key in clean:
            assert type(clean[key]) is int and 0 <= clean[key] < 2**63
    for guest in reports.guests(params["guests"]) if isinstance(params.get("guests"), list) else []:
        assert isinstance(guest["uuid"], str) and guest["uuid"]
        assert guest.get("power_state", 0) in reports.POWER_STATES
        for addr in guest.get("addresses", []):
            assert isinstance(addr, dict) and isinstance(addr["addr"], str)


AGENT_METHODS = sorted(OrderHandlers(FakeDriver()).table())
order_keys = st.sampled_from(
    ["uuid", "instance", "hard", "power_on", "length", "tunnel_url", "tunnel_token", "address"]
    + ["port", "state", "upload_url", "capability", "disk", "keep_resize"]
)
orders = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "id": st.integers(1, 50),
        "method": st.sampled_from(AGENT_METHODS),
        "params": st.dictionaries(order_keys, json_values | st.just("u1"), max_size=5),
    }
).map(json.dumps)


@settings(CI, max_examples=examples(40))
@given(frames=st.lists(orders | frames_of(["u1"]), min_size=1, max_size=6))
def test_agent_peer_answers_every_order(frames: list[str | bytes]) -> None:
    """The agent's Peer with its real order table (fake driver): every frame is answered
    with at most one well-formed frame per request id, nothing escapes `feed`, and no
    handler fails with a traceback (bad params are `invalid_params`, unknown guests
    `not_found`)."""

    async def run() -> tuple[list[str], list[logging.LogRecord]]:
        sent: list[str] = []

        async def send(frame: str) -> None:
            sent.append(frame)

        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger("mininova").addHandler(handler)
        try:
            peer = Peer(send, OrderHandlers(FakeDriver(boot_seconds=0, op_seconds=0)).table())
            for frame in frames:
                await peer.feed(frame)
            await wait_for(lambda: not peer._tasks, 5, 0.001, "the orders to finish")
        finally:
            logging.getLogger("mininova").removeHandler(handler)
        return sent, records

    sent, records = asyncio.run(run())
    for answer in sent:
        data = json.loads(answer)
        assert data["v"] == 1 and ("result" in data) != ("error" in data), data
        if "error" in data:
            assert data["error"]["code"] != "failed", data
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]


def _strings(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(obj, list):
        return [s for item in obj for s in _strings(item)]
    return []


# -- (b) through a real websocket to a running controller -------------------------------------

SERVERS = "/compute/v2.1/servers"
FUZZ_HOST = "fuzz1"
# What the link may be closed with: 1009 message too big, 1007 not UTF-8 text, 4003 refused.
CLOSE_CODES = {1009, 1007, 4003}


def _bind(frame: str | bytes, names: dict[str, str]) -> str | bytes:
    """`frame` with the placeholder uuids replaced by the real ones."""
    for name, uuid in names.items():
        frame = (
            frame.replace(name, uuid)
            if isinstance(frame, str)
            else frame.replace(name.encode(), uuid.encode())
        )
    return frame


class FuzzAgent:
    """A hand-driven agent link: answers the controller's orders like a host running the
    guests it spawned, and lets the test send any frame and wait for replies to its own ids."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.replies: dict[int, dict[str, Any]] = {}
        self.answers: list[dict[str, Any]] = []
        self.guests: dict[str, dict[str, Any]] = {}
        self.closed = False
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame = json.loads(message)
                if "method" in frame and "id" in frame:
                    await self.ws.send(json.dumps(self._order(frame)))
                elif frame.get("id") is not None and frame["id"] in self.replies:
                    self.replies[frame["id"]] = frame
                else:
                    self.answers.append(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    @property
    def close_code(self) -> int | None:
        """The code of the controller's close frame (None: none received)."""
        rcvd = self.ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    def _order(self, frame: dict[str, Any]) -> dict[str, Any]:
        method, params = frame["method"], frame.get("params") or {}
        result: Any = {}
        if method == "spawn":
            uuid = params["instance"]["uuid"]
            result = {
                "uuid": uuid,
                "power_state": 1,
                "domain_name": "fuzz-" + uuid[:8],
                "addresses": [{"version": 4, "addr": "192.0.2.10", "mac": "52:54:00:0f:00:01"}],
            }
            self.guests[uuid] = result
        elif method == "list_guests":
            result = list(self.guests.values())
        elif method == "network_sync":
            result = {"ok": True, "errors": [], "table": "", "guests": 0, "floating_ips": 0}
        return {"v": 1, "id": frame["id"], "result": result}

    async def send_call(self, frame_id: int, method: str, params: dict[str, Any]) -> None:
        self.replies[frame_id] = {}
        await self.ws.send(json.dumps({"v": 1, "id": frame_id, "method": method, "params": params}))

    async def reply(self, frame_id: int, what: str = "a reply") -> dict[str, Any]:
        def answered() -> dict[str, Any]:
            if self.closed and not self.replies[frame_id]:
                raise ConnectionResetError("the controller closed the link")
            return self.replies[frame_id]

        return await wait_for(answered, 10, 0.01, what)

    async def call(self, frame_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        await self.send_call(frame_id, method, params)
        return await self.reply(frame_id, f"reply to {method}")

    async def wait_closed(self) -> None:
        """Until the reader saw the link end."""
        await asyncio.wait_for(asyncio.shield(self._task), 5)

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def open_link(controller: Controller, credential: str) -> FuzzAgent:
    url = controller.config.base_url.replace("http://", "ws://") + "/agent"
    ws = await websockets.connect(
        url,
        additional_headers={"Authorization": f"Bearer {credential}"},
        max_size=None,
        compression=None,
    )
    return FuzzAgent(ws)


@contextlib.asynccontextmanager
async def fuzz_link(controller: Controller, credential: str) -> AsyncIterator[FuzzAgent]:
    agent = await open_link(controller, credential)
    try:
        yield agent
    finally:
        await agent.close()


HELLO = {
    "host": FUZZ_HOST,
    "driver": "fake",
    "protocol": 1,
    "resources": {"vcpus": 8, "memory_mb": 8192, "local_gb": 80},
    "guests": [],
}


async def rows(controller: Controller) -> dict[str, Any]:
    """The instance and host rows a report could change (heartbeat times left out)."""
    assert controller.store is not None
    out: dict[str, Any] = {}
    for table, key, skip in (
        (schema.instances, "uuid", {"updated_at"}),
        (schema.compute_nodes, "host", {"last_heartbeat", "updated_at"}),
    ):
        for row in await controller.store.all(table.select()):
            out[f"{table.name}/{row[key]}"] = {k: v for k, v in row.items() if k not in skip}
    return out


async def integrity(controller: Controller) -> None:
    assert controller.store is not None
    if controller.store.dialect.name == "sqlite":
        (row,) = await controller.store.all(text("PRAGMA integrity_check"))
        assert list(row.values()) == ["ok"], row


async def boot(api: ApiClient, name: str) -> str:
    image = await api.upload_image(name)
    status, body, _ = await api.post(
        SERVERS,
        json={"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}},
        version="2.37",
    )
    assert status == 202, body
    return body["server"]["id"]


async def test_agent_endpoint_survives_generated_frames(
    controller: Controller, api: ApiClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert controller.store is not None and controller.hub is not None
    # Drawn before any agent links: generating must not hold up the event loop's heartbeats.
    generated = await asyncio.to_thread(collect, frames_of(["@MINE@", "@THEIRS@", "x"]), 60)
    credential = await enrolment.enrol_host(controller.store, controller.join_token, FUZZ_HOST)
    async with fuzz_link(controller, credential) as fuzz:
        assert "error" not in await fuzz.call(1, "hello", HELLO)
        # The fuzzing host runs a guest, so that its reports have something to hurt.
        mine = await boot(api, "fuzz-vm")
        await api.wait_server(mine, "ACTIVE")
        async with fake_agent(controller, tmp_path, "node1", api=api):
            theirs = await boot(api, "good-vm")
            await api.wait_server(theirs, "ACTIVE")
            servers = {mine: "fuzz-vm", theirs: "good-vm"}
            before = await rows(controller)
            assert before[f"instances/{theirs}"]["host"] == "node1"
            frames = [_bind(f, {"@MINE@": mine, "@THEIRS@": theirs}) for f in generated]
            # Larger than the hub's websocket limit (8 MiB): the link closes with 1009.
            frames.insert(len(frames) // 2, b"x" * (8 * 1024 * 1024 + 1))
            next_id = 1000
            link = fuzz
            for frame in frames:
                next_id += 1
                reply = None
                with contextlib.suppress(ConnectionClosed, ConnectionResetError):
                    await link.ws.send(frame)
                    reply = await link.call(next_id, "heartbeat", {})
                if reply is None:  # the controller closed the link: with a documented code
                    await link.wait_closed()
                    assert link.close_code in CLOSE_CODES, (link.close_code, str(frame)[:200])
                    await link.close()
                    link = await open_link(controller, credential)
                    assert "error" not in await link.call(1, "hello", HELLO)
                    continue
                assert reply == {"v": 1, "id": next_id, "result": {}}, (frame, reply)
                # the well-behaved agent is still served meanwhile
                assert controller.hub.is_connected("node1")
            await controller.hub.call("node1", "list_guests", {}, timeout=10)
            status, body, _ = await api.post(f"{SERVERS}/{theirs}/action", json={"os-stop": None})
            assert status == 202, body
            await api.wait_server(theirs, "SHUTOFF")
            await link.close()
            after = await rows(controller)
    # Nothing changed but what the valid frames asked (node1's server was stopped by the API).
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {f"instances/{theirs}", "compute_nodes/node1", f"compute_nodes/{FUZZ_HOST}"}
    for key in ("host", "vm_state", "addresses", "power_state"):
        assert after[f"instances/{mine}"][key] == before[f"instances/{mine}"][key]
    for server, name in servers.items():
        status, body, _ = await api.get(f"{SERVERS}/{server}")
        assert status == 200 and body["server"]["name"] == name, body
    await integrity(controller)
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks][:5]


async def test_bad_reports_are_ignored_or_refused(
    controller: Controller, api: ApiClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An event for another host's instance or an unknown one is ignored; a power state that
    is not one of Nova's is refused (`invalid_params`); a heartbeat's malformed addresses or
    power state are not applied; none of them changes a row or breaks the server's API."""
    assert controller.store is not None and controller.bus is not None
    assert controller.hub is not None
    credential = await enrolment.enrol_host(controller.store, controller.join_token, FUZZ_HOST)
    async with fuzz_link(controller, credential) as fuzz:
        await fuzz.call(1, "hello", HELLO)
        mine = await boot(api, "fuzz-vm")
        await api.wait_server(mine, "ACTIVE")
        async with fake_agent(controller, tmp_path, "node1", api=api):
            theirs = await boot(api, "good-vm")
            await api.wait_server(theirs, "ACTIVE")
            await controller.bus.drain()
            before = await rows(controller)
            events = [
                ({"uuid": theirs, "power_state": 4}, "result"),  # another host's: ignored
                ({"uuid": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "power_state": 4}, "result"),
                ({"uuid": mine, "power_state": 2**70}, "error"),
                ({"uuid": mine, "power_state": 99}, "error"),
                ({"uuid": mine, "power_state": True}, "error"),
            ]
            for n, (params, answer) in enumerate(events, start=2):
                reply = await fuzz.call(n, "instance_event", params)
                assert answer in reply, (params, reply)
                if answer == "error":
                    assert reply["error"]["code"] == "invalid_params", reply
            # a hello with `protocol: true` on a second link is refused, the first link stays
            async with fuzz_link(controller, credential) as other:
                reply = await other.call(1, "hello", {**HELLO, "protocol": True})
                assert reply["error"]["code"] == "unsupported_version", reply
            assert controller.hub.is_connected(FUZZ_HOST)
            bad_guests = [
                {"uuid": mine, "power_state": 1, "addresses": [1, "x"]},
                {"uuid": mine, "power_state": "4", "addresses": [{"addr": None}]},
                {"uuid": mine, "power_state": 2**64, "addresses": [{"addr": "not-an-ip"}]},
            ]
            for n, guest in enumerate(bad_guests, start=10):
                assert "result" in await fuzz.call(n, "heartbeat", {"guests": [guest]})
                await controller.bus.drain()
                status, body, _ = await api.get(f"{SERVERS}/{mine}")
                assert status == 200, body
            await controller.bus.drain()
            after = await rows(controller)
    assert after == before
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"


async def test_a_second_hello_on_a_link_is_refused(controller: Controller) -> None:
    """Two hellos sent at once on one link (join token, two names): one is accepted, the
    other refused, and once the link is gone neither host is left looking connected."""
    assert controller.hub is not None
    async with fuzz_link(controller, controller.join_token) as fuzz:
        await fuzz.send_call(1, "hello", {**HELLO, "host": "twin-a"})
        await fuzz.send_call(2, "hello", {**HELLO, "host": "twin-b"})
        replies = [await fuzz.reply(1), await fuzz.reply(2)]
        assert sorted("error" in r for r in replies) == [False, True], replies
        (refused,) = [r for r in replies if "error" in r]
        assert refused["error"]["code"] == "invalid_frame", refused
    await wait_for(
        lambda: not (controller.hub.links.keys() & {"twin-a", "twin-b"}),
        5,
        0.01,
        lambda: f"the hub to drop the closed link: {sorted(controller.hub.links)}",
    )


async def test_a_spawn_reply_with_bad_guest_info_cannot_break_the_server_api(
    controller: Controller, api: ApiClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's answer to `spawn` reaches the database as a report does: a power state out of
    Nova's set and an address list of junk are left out, the server lands ACTIVE and every
    view of it answers 200 (before, `addresses: [1]` was stored and GET /servers/{id} was 500)."""
    async with fake_agent(controller, tmp_path, api=api) as driver:
        real_spawn = driver.spawn

        async def bad_spawn(spec: Any) -> Any:
            info = await real_spawn(spec)
            info.power_state = 2**70
            info.addresses = [1, {"addr": "not-an-ip", "version": 4}]
            return info

        monkeypatch.setattr(driver, "spawn", bad_spawn)
        image = await api.upload_image()
        body = {
            "server": {"name": "bad-info", "imageRef": image, "flavorRef": "1", "networks": "none"}
        }
        status, created, _ = await api.post("/compute/v2.1/servers", json=body, version="2.37")
        assert status == 202, created
        uuid = created["server"]["id"]
        server = await api.wait_server(uuid, "ACTIVE", "ERROR")
        assert server["status"] == "ACTIVE", server
        for path in (f"/compute/v2.1/servers/{uuid}", "/compute/v2.1/servers/detail"):
            status, shown, _ = await api.get(path, version="2.100")
            assert status == 200, (path, shown)
        status, shown, _ = await api.get(f"/compute/v2.1/servers/{uuid}")
        assert shown["server"]["addresses"] == {}, shown["server"]["addresses"]
        assert shown["server"]["OS-EXT-STS:power_state"] == 1
