"""The sans-I/O agent protocol core, fed raw frames: no sockets, no clock."""

from __future__ import annotations

import json

import pytest

from mininova.protocol import reports
from mininova.protocol.core import (
    INVALID_FRAME,
    INVALID_PARAMS,
    PARSE_ERROR,
    UNSUPPORTED_VERSION,
    Endpoint,
    ErrorReply,
    Notification,
    Reply,
    Request,
)


def _error_code(frame: str | None) -> str:
    assert frame is not None
    return json.loads(frame)["error"]["code"]


def test_request_reply_round_trip() -> None:
    controller, agent = Endpoint(), Endpoint()
    request_id, frame = controller.request("spawn", {"uuid": "u1"})
    event, answer = agent.receive(frame)
    assert event == Request(request_id, "spawn", {"uuid": "u1"}) and answer is None
    event, answer = controller.receive(agent.reply(request_id, {"power_state": 1}))
    assert event == Reply(request_id, {"power_state": 1}, "spawn") and answer is None
    assert controller.pending == {}


def test_error_reply_carries_code_and_method() -> None:
    a, b = Endpoint(), Endpoint()
    request_id, _ = a.request("destroy")
    event, _ = a.receive(b.reply_error(request_id, "not_found", "no such guest"))
    assert event == ErrorReply(request_id, "not_found", "no such guest", "destroy")


def test_notification_has_no_id() -> None:
    event, answer = Endpoint().receive(Endpoint().notify("heartbeat", {"guests": []}))
    assert event == Notification("heartbeat", {"guests": []}) and answer is None


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\xff\xfe", PARSE_ERROR),
        ("not json", PARSE_ERROR),
        ("[1, 2]", INVALID_FRAME),
        ('{"v": 1}', INVALID_FRAME),
        ('{"v": 2, "id": 1, "method": "spawn"}', UNSUPPORTED_VERSION),
        ('{"v": 1, "id": "x", "method": "spawn"}', INVALID_FRAME),
        ('{"v": 1, "id": 1, "method": 7}', INVALID_FRAME),
        ('{"v": 1, "id": 1, "method": "spawn", "params": [1]}', INVALID_PARAMS),
        ("x" * (4 * 1024 * 1024 + 1), INVALID_FRAME),
    ],
)
def test_malformed_frames_get_an_error_reply_not_an_exception(
    frame: str | bytes, code: str
) -> None:
    event, answer = Endpoint().receive(frame)
    assert event is None
    assert _error_code(answer) == code


@pytest.mark.parametrize(
    "params",
    [
        {"big": 2**70, "negative": -(2**64) - 1},  # beyond 64 bits: still exact integers
        {"text": "h\u00e9llo \u2603", "nested": [[{"a": None}]], "float": 0.1},
        {"surrogate": "\ud800"},  # a lone surrogate, as the standard library reads it
    ],
)
def test_frames_carry_values_exactly(params: dict) -> None:
    request_id, frame = Endpoint().request("spawn", params)
    event, answer = Endpoint().receive(frame)
    assert answer is None
    assert event == Request(request_id, "spawn", params)


def test_a_deeply_nested_frame_gets_a_parse_error() -> None:
    frame = (
        '{"v": 1, "id": 1, "method": "spawn", "params": {"x": '
        + "[" * 100_000
        + "]" * 100_000
        + "}}"
    )
    event, answer = Endpoint().receive(frame)
    assert event is None and answer is not None
    assert json.loads(answer)["error"] == {
        "code": PARSE_ERROR,
        "message": "frame is nested too deeply",
    }


def test_unsolicited_and_late_replies_are_dropped_silently() -> None:
    endpoint = Endpoint()
    assert endpoint.receive('{"v": 1, "id": 99, "result": {}}') == (None, None)
    request_id, _ = endpoint.request("get_info")
    endpoint.abandon(request_id)  # timed out
    assert endpoint.receive(json.dumps({"v": 1, "id": request_id, "result": {}})) == (None, None)


def test_an_error_reply_is_never_answered_with_an_error() -> None:
    assert Endpoint().receive('{"v": 9, "id": 1, "error": {"code": "x"}}') == (None, None)


def test_link_loss_fails_all_pending() -> None:
    endpoint = Endpoint()
    ids = [endpoint.request("spawn")[0], endpoint.request("destroy")[0]]
    assert sorted(endpoint.fail_all()) == sorted(ids)
    assert endpoint.pending == {}


@pytest.mark.parametrize(
    ("advertised", "chosen"),
    [
        (None, 1),  # an agent from before version 2 says nothing: version 1
        ([1], 1),
        ([1, 2], 2),
        ([2, 7], 2),
        ([7], 1),
        ([True, 2.0], 1),
        ("1,2", 1),
    ],
)
def test_the_network_state_version_is_the_newest_both_take(advertised: object, chosen: int) -> None:
    assert reports.network_state_version(advertised) == chosen
