"""Sans-I/O core of the controller ⇄ agent protocol.

Frames are JSON text: requests `{"v":1,"id":N,"method":M,"params":{...}}`, notifications
(no reply expected) `{"v":1,"method":M,"params":{...}}`, replies `{"v":1,"id":N,"result":...}`
or `{"v":1,"id":N,"error":{"code":C,"message":S}}`.

`Endpoint.receive(frame)` turns one incoming frame into an event; a malformed frame yields an
error reply to send back instead of an exception, so a bad peer can never crash this side.
No sockets, no clocks: the asyncio shell in `peer.py` does the I/O and timeouts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from mininova import exact_json

PROTOCOL_VERSION = 1
# Agents call the controller's HTTP API with `Authorization: Bearer <host credential>` plus
# this header holding the capability the order carried (never a Keystone token).
CAPABILITY_HEADER = "X-Mininova-Capability"
MAX_FRAME_BYTES = 4 * 1024 * 1024
# The `network_sync` state documents an agent can take (mininova/network/hoststate.py); it
# lists them in its hello as `network_state_versions` (absent: version 1 only).
NETWORK_STATE_VERSIONS = (1, 2, 3, 4)
# Ids are JSON numbers that every peer can hold exactly (a JavaScript-safe integer).
MAX_ID = 2**53 - 1

# Error codes.
PARSE_ERROR = "parse_error"
INVALID_FRAME = "invalid_frame"
UNSUPPORTED_VERSION = "unsupported_version"
UNKNOWN_METHOD = "unknown_method"
INVALID_PARAMS = "invalid_params"
FAILED = "failed"
NOT_FOUND = "not_found"
TIMEOUT = "timeout"
# open_tcp_tunnel: the address is not one of the guest's own fixed IPs / the guest did not answer.
ADDRESS_REFUSED = "address_refused"
UNREACHABLE = "unreachable"


class ProtocolError(Exception):
    """A peer answered with an error, or the link broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    id: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    id: int
    result: Any
    method: str  # the method of the request it answers


@dataclass(frozen=True)
class ErrorReply:
    id: int | None
    code: str
    message: str
    method: str | None = None


Event = Request | Notification | Reply | ErrorReply


def _is_id(value: Any) -> bool:
    """A request id: a JSON integer (not a boolean) in 0..MAX_ID."""
    return type(value) is int and 0 <= value <= MAX_ID


def _brief(value: Any) -> str:
    """A short repr of a peer's value for an error message (never the whole of a huge one)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _encode(payload: dict[str, Any]) -> str:
    """A frame's text: orjson (a network state of thousands of addresses is encoded several
    times a second), the standard library for what orjson refuses (e.g. a 65-bit integer)."""
    frame = {"v": PROTOCOL_VERSION, **payload}
    try:
        return orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(frame, separators=(",", ":"))


class Endpoint:
    """One side of a link: numbers requests, matches replies, validates frames."""

    def __init__(self) -> None:
        self._next_id = 1
        self._pending: dict[int, str] = {}

    @property
    def pending(self) -> dict[int, str]:
        """Outstanding request ids and their methods."""
        return dict(self._pending)

    def request(self, method: str, params: dict[str, Any] | None = None) -> tuple[int, str]:
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        return request_id, _encode({"id": request_id, "method": method, "params": params or {}})

    def notify(self, method: str, params: dict[str, Any] | None = None) -> str:
        return _encode({"method": method, "params": params or {}})

    def reply(self, request_id: int, result: Any) -> str:
        return _encode({"id": request_id, "result": result})

    def reply_error(self, request_id: int | None, code: str, message: str) -> str:
        return _encode({"id": request_id, "error": {"code": code, "message": message}})

    def abandon(self, request_id: int) -> None:
        """Forget a request (timed out); a late reply to it is then ignored."""
        self._pending.pop(request_id, None)

    def fail_all(self) -> list[int]:
        """The link broke: every pending request is lost. Returns their ids."""
        ids = list(self._pending)
        self._pending.clear()
        return ids

    def receive(self, frame: str | bytes) -> tuple[Event | None, str | None]:
        """Parse one incoming frame: (event or None, frame to send back or None)."""
        if isinstance(frame, bytes):
            if len(frame) > MAX_FRAME_BYTES:
                return None, self.reply_error(None, INVALID_FRAME, "frame too large")
            try:
                frame = frame.decode("utf-8")
            except UnicodeDecodeError:
                return None, self.reply_error(None, PARSE_ERROR, "frame is not UTF-8")
        if len(frame) > MAX_FRAME_BYTES:
            return None, self.reply_error(None, INVALID_FRAME, "frame too large")
        try:
            data = exact_json.loads(frame)
        except ValueError:
            return None, self.reply_error(None, PARSE_ERROR, "frame is not JSON")
        except RecursionError:
            return None, self.reply_error(None, PARSE_ERROR, "frame is nested too deeply")
        if not isinstance(data, dict):
            return None, self.reply_error(None, INVALID_FRAME, "frame is not a JSON object")
        raw_id = data.get("id")
        frame_id = raw_id if _is_id(raw_id) else None
        version = data.get("v")
        if type(version) is not int or version != PROTOCOL_VERSION:
            if "result" in data or "error" in data:
                return None, None  # never answer a reply with an error: that could loop
            return None, self.reply_error(
                frame_id, UNSUPPORTED_VERSION, f"protocol version {_brief(version)} unsupported"
            )
        if "method" in data:
            return self._receive_call(data, raw_id, frame_id)
        if "result" in data or "error" in data:
            return self._receive_reply(data, frame_id), None
        return None, self.reply_error(frame_id, INVALID_FRAME, "neither a call nor a reply")

    def _receive_call(
        self, data: dict[str, Any], raw_id: Any, frame_id: int | None
    ) -> tuple[Event | None, str | None]:
        method = data["method"]
        params = data.get("params", {})
        if not isinstance(method, str) or not method:
            return None, self.reply_error(frame_id, INVALID_FRAME, "method must be a string")
        if not isinstance(params, dict):
            return None, self.reply_error(frame_id, INVALID_PARAMS, "params must be an object")
        if raw_id is None:
            return Notification(method, params), None
        if frame_id is None:
            return None, self.reply_error(
                None, INVALID_FRAME, f"id must be an integer from 0 to {MAX_ID}"
            )
        return Request(frame_id, method, params), None

    def _receive_reply(self, data: dict[str, Any], frame_id: int | None) -> Event | None:
        if frame_id is None or frame_id not in self._pending:
            return None  # unsolicited or late reply: dropped silently
        method = self._pending.pop(frame_id)
        if "error" in data:
            err = data["error"]
            if not isinstance(err, dict):
                return ErrorReply(frame_id, INVALID_FRAME, "malformed error", method)
            return ErrorReply(
                frame_id, str(err.get("code", FAILED)), str(err.get("message", "")), method
            )
        return Reply(frame_id, data["result"], method)
