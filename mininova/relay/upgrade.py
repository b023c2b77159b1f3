"""The raw tunnel dial-in handshake, sans I/O: HTTP/1.1 `Upgrade: tcp`, then bare bytes.

The agent's per-tunnel connection to the controller (see docs/agent-protocol.md):

    agent -> controller   GET /agent/tunnel/<id> HTTP/1.1
                          Host: <controller>
                          Connection: Upgrade
                          Upgrade: tcp
                          Authorization: Bearer <host credential>
                          X-Mininova-Capability: <one-time tunnel token>
    controller -> agent   HTTP/1.1 101 Switching Protocols
                          Connection: Upgrade
                          Upgrade: tcp

after which each direction is a sequence of chunks, `u32 length (big-endian) | payload`:
the tunnel's bytes as they are, with a 4-byte header per chunk (what the sender had at
once, at most MAX_CHUNK bytes) and no masking, no opcodes. A chunk of length 0 is a
keepalive (sent after `keepalive` seconds without anything sent, because proxies and NAT
boxes with an idle timer see no TCP keepalive probes) and carries nothing. A refusal is an
ordinary HTTP response (401/403/404 with the JSON error body) and the connection closes.
The agent sends nothing after its request until it read the 101.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UPGRADE = "tcp"
MAX_HEAD = 64 * 1024  # a response head larger than this is refused
MAX_CHUNK = 1 << 20  # the largest chunk a receiver accepts (senders send <= 256 KiB)
KEEPALIVE_CHUNK = b"\0\0\0\0"


class UpgradeRefused(Exception):
    """The controller did not switch to the raw tunnel (its status and error message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.message = message


@dataclass
class ResponseHead:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("content-length", "0")))
        except ValueError:
            return 0


def _token(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"invalid character in {what}")
    return value


def request_head(host: str, path: str, headers: dict[str, str]) -> bytes:
    """The agent's upgrade request for `path` on `host` (host[:port]) with extra `headers`."""
    lines = [
        f"GET {_token(path, 'path')} HTTP/1.1",
        f"Host: {_token(host, 'host')}",
        "Connection: Upgrade",
        f"Upgrade: {UPGRADE}",
        "Content-Length: 0",
    ]
    lines += [f"{_token(k, 'header')}: {_token(v, 'header')}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def is_raw_upgrade(connection: str, upgrade: str) -> bool:
    """Whether a request's Connection and Upgrade headers ask for the raw tunnel."""
    tokens = {t.strip().lower() for t in connection.split(",")}
    return "upgrade" in tokens and upgrade.strip().lower() == UPGRADE


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) once `buffer` holds a whole response head, else None (wait for more);
    ValueError when no head ended within MAX_HEAD bytes."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise ValueError("response head too large")
        return None
    return buffer[:end], buffer[end + 4 :]


def parse_response_head(head: bytes) -> ResponseHead:
    """Status line and headers of a response head (without its final blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed header line: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def check_switched(head: ResponseHead, body: bytes = b"") -> None:
    """Raise UpgradeRefused unless `head` is the 101 to the raw tunnel; the message is the
    JSON error body's `error.message` when there is one."""
    if head.status == 101 and is_raw_upgrade(
        head.headers.get("connection", ""), head.headers.get("upgrade", "")
    ):
        return
    if head.status == 101:
        raise UpgradeRefused(101, f"switched to {head.headers.get('upgrade', '?')!r}, not tcp")
    message = head.reason
    try:
        import json

        error = json.loads(body.decode("utf-8")).get("error", {})
        message = str(error.get("message") or message)
    except (ValueError, AttributeError, RecursionError):  # RecursionError: nested too deeply
        pass
    raise UpgradeRefused(head.status, message)


def chunk_header(length: int) -> bytes:
    """The 4-byte header of a chunk of `length` payload bytes."""
    return length.to_bytes(4, "big")


class ChunkDecoder:
    """Splits the received byte stream into the chunks' payloads, without copying them:
    `feed(data)` returns `data` itself or memoryview slices of it (a header split across
    reads is kept until its last byte arrives); keepalive chunks yield nothing. ValueError
    on a chunk larger than MAX_CHUNK."""

    def __init__(self) -> None:
        self._need = 0  # payload bytes left in the current chunk
        self._head = b""  # a partial header

    def feed(self, data: bytes) -> list[bytes | memoryview]:
        out: list[bytes | memoryview] = []
        size = len(data)
        view: memoryview | None = None
        pos = 0
        while pos < size:
            if self._need:
                take = min(self._need, size - pos)
                if pos == 0 and take == size:
                    out.append(data)
                else:
                    view = view if view is not None else memoryview(data)
                    out.append(view[pos : pos + take])
                self._need -= take
                pos += take
                continue
            if self._head or size - pos < 4:
                piece = data[pos : pos + 4 - len(self._head)]
                self._head += piece
                pos += len(piece)
                if len(self._head) < 4:
                    break
                need, self._head = int.from_bytes(self._head, "big"), b""
            else:
                need = int.from_bytes(data[pos : pos + 4], "big")
                pos += 4
            if need > MAX_CHUNK:
                raise ValueError(f"tunnel chunk of {need} bytes (limit {MAX_CHUNK})")
            self._need = need
        return out
