"""`End` adapters for `websockets` connections, asyncio streams and plain sockets (no aiohttp
here).

The aiohttp websocket end lives in `mininova.consoleproxy.ends`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module
from collections import deque
from typing import Any, cast
from urllib.parse import urlsplit

from mininova.relay.core import DEFAULT_CHUNK
from mininova.relay.upgrade import (
    KEEPALIVE_CHUNK,
    ChunkDecoder,
    check_switched,
    chunk_header,
    parse_response_head,
    request_head,
    split_head,
)


def close_message(reason: str) -> bytes:
    # A websocket close reason is limited to 123 bytes of UTF-8.
    return reason.encode("utf-8", "replace")[:120]


class WebsocketsEnd:
    """A connection of the `websockets` library (asyncio implementation)."""

    def __init__(self, conn: Any, name: str) -> None:
        self.conn = conn
        self.name = name

    async def read(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        while True:
            try:
                data = await self.conn.recv()
            except ConnectionClosed:
                return b""
            if isinstance(data, str):
                data = data.encode()
            if data:
                return data

    async def write(self, data: bytes) -> None:
        await self.conn.send(data)

    async def close(self, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.conn.close(reason=reason[:120]), 5)


class StreamEnd:
    """An asyncio (reader, writer) pair: a TCP or unix socket."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        name: str,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.name = name
        self.chunk = chunk

    async def read(self) -> bytes:
        try:
            return await self.reader.read(self.chunk)
        except (ConnectionError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)


SOCKET_LIMIT = 8 * DEFAULT_CHUNK  # a SocketEnd stops reading its socket above this backlog
READ_SIZE = 1 << 20  # bytes a socket read may return at once (asyncio's default: 256 KiB)


def set_read_size(transport: asyncio.BaseTransport, size: int) -> None:
    """Let asyncio's socket transport read up to `size` bytes per recv (fewer reads,
    callbacks and frames per GB); `max_size` is the selector transport's own attribute,
    left alone where it does not exist (TLS, other loops)."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = size  # type: ignore[attr-defined]


COALESCE = 64 * 1024


def take_coalesced(chunks: deque[Any], limit: int = COALESCE) -> Any:
    """Pop the first chunk; when it is small and more wait, join the following ones up to
    `limit` bytes (one write instead of many). A lone or large chunk comes back as it is."""
    data = chunks.popleft()
    if not chunks or len(data) >= limit:
        return data
    parts = [data]
    size = len(data)
    while chunks and size + len(chunks[0]) <= limit:
        size += len(chunks[0])
        parts.append(chunks.popleft())
    return b"".join(parts) if len(parts) > 1 else data


class SocketEnd(asyncio.Protocol):
    """A TCP or unix socket as an `End`, straight on asyncio's transport (no StreamReader).

    Each chunk the transport received is handed to `read()` as the very bytes object the
    transport made (small chunks waiting together are joined, up to COALESCE bytes, so that
    many small writes of the guest become one frame); asyncio's StreamReader
    copies every byte into its buffer and out again, which was ~30 % of the agent's CPU while
    relaying a guest's bulk output. Reading from the socket pauses while `limit` bytes wait
    for `read()`; `write()` returns at once unless the transport's buffer is above its
    high-water mark, then it waits for `resume_writing`. Open one with `connect_socket_end` or
    `connect_unix_socket_end`.
    """

    def __init__(self, name: str, limit: int = SOCKET_LIMIT) -> None:
        self.name = name
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        set_read_size(transport, READ_SIZE)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size >= self.limit and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = self._lost = True
        self._wake_reader()
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def _wake_reader(self) -> None:
        if self._read_waiter is not None and not self._read_waiter.done():
            self._read_waiter.set_result(None)

    # -- End ----------------------------------------------------------------------------

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        data = take_coalesced(self._chunks)
        self._size -= len(data)
        if self._reading_paused and self._size < self.limit and not self._lost:
            assert self.transport is not None
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self._lost or self.transport is None or self.transport.is_closing():
            raise ConnectionResetError(f"{self.name} is closed")
        self.transport.write(data)
        while self._writing_paused and not self._lost:
            self._write_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._write_waiter
            finally:
                self._write_waiter = None
        if self._lost:
            raise ConnectionResetError(f"{self.name} closed while writing")

    def unread(self, data: bytes) -> None:
        """Put `data` back in front of what `read()` returns next (after a handshake)."""
        self._chunks.appendleft(data)
        self._size += len(data)

    def close_now(self) -> None:
        """Close without waiting (buffered output is still flushed by the transport)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def close(self, reason: str = "") -> None:
        self.close_now()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._closed), 5)


async def connect_socket_end(
    host: str, port: int, name: str, limit: int = SOCKET_LIMIT
) -> SocketEnd:
    """A TCP connection to host:port as a `SocketEnd` (TCP_NODELAY, as asyncio sets it)."""
    loop = asyncio.get_running_loop()
    _, end = await loop.create_connection(lambda: SocketEnd(name, limit), host, port)
    return end


async def connect_unix_socket_end(path: str, name: str, limit: int = SOCKET_LIMIT) -> SocketEnd:
    """A unix socket connection as a `SocketEnd`."""
    loop = asyncio.get_running_loop()
    _, end = await loop.create_unix_connection(lambda: SocketEnd(name, limit), path)
    return end


def set_keepalive(transport: asyncio.BaseTransport, idle: float) -> None:
    """TCP keepalive probes after `idle` seconds of silence (a raw tunnel has no websocket
    pings; idle NAT/proxies would cut it); no-op where the options are missing."""
    sock = transport.get_extra_info("socket")
    if sock is None or idle <= 0:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(idle)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(idle) // 2))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)


async def dial_raw_tunnel(
    url: str,
    headers: dict[str, str],
    name: str,
    *,
    ssl: Any = None,
    keepalive: float = 0,
    limit: int = SOCKET_LIMIT,
) -> ChunkedEnd:
    """Open a raw tunnel to the controller (`mininova.relay.upgrade`): TCP, TLS for
    https:// and wss:// (`ssl`: the pinned CA's context, else default verification), the
    `Upgrade: tcp` request with `headers`, the 101; then the tunnel's chunks on a
    `SocketEnd` (`ChunkedEnd`, a keepalive chunk after `keepalive` idle seconds).
    Raises `UpgradeRefused` (the controller's status and message) or OSError."""
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ValueError(f"not an http(s):// or ws(s):// URL: {url!r}")
    port = parts.port or (443 if secure else 80)
    context = None
    if secure:
        context = ssl if ssl is not None else ssl_module.create_default_context()
    loop = asyncio.get_running_loop()
    _, end = await loop.create_connection(
        lambda: SocketEnd(name, limit),
        parts.hostname,
        port,
        ssl=context,
        server_hostname=parts.hostname if secure else None,
    )
    try:
        assert end.transport is not None
        host = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        end.transport.write(request_head(host, target, headers))
        buffer = b""
        while (split := split_head(buffer)) is None:
            data = await end.read()
            if not data:
                raise ConnectionResetError("the controller closed the tunnel connection")
            buffer += data
        head, rest = split
        response = parse_response_head(head)
        if response.status != 101:
            while len(rest) < min(response.content_length, MAX_ERROR_BODY):
                data = await end.read()
                if not data:
                    break
                rest += data
        check_switched(response, rest)
        if rest:  # tunnel bytes right behind the 101
            end.unread(rest)
        set_keepalive(end.transport, keepalive)
        return ChunkedEnd(end, name, keepalive)
    except BaseException:
        end.close_now()
        raise


MAX_ERROR_BODY = 64 * 1024


class ChunkedEnd:
    """The raw tunnel's chunk layer (`mininova.relay.upgrade`) on a byte `End`: `read()`
    returns payloads (memoryview slices of what the inner end read: no copies; small pieces
    waiting together are joined), `write(data)` sends a 4-byte header and `data` as is;
    after `keepalive` seconds without a write it sends a keepalive chunk (0: never)."""

    def __init__(self, inner: Any, name: str, keepalive: float = 0) -> None:
        self.inner = inner
        self.name = name
        self._decoder = ChunkDecoder()
        self._pending: deque[bytes | memoryview] = deque()
        self._last_write = asyncio.get_running_loop().time()
        self._writing = False  # no keepalive between a header and its payload
        self._keepalive: asyncio.Task[None] | None = None
        if keepalive > 0:
            self._keepalive = asyncio.create_task(self._keep_alive(keepalive))

    async def _keep_alive(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(max(0.05, self._last_write + interval - loop.time()))
                if loop.time() - self._last_write >= interval and not self._writing:
                    self._last_write = loop.time()
                    await self.inner.write(KEEPALIVE_CHUNK)

    async def read(self) -> bytes:
        while not self._pending:
            data = await self.inner.read()
            if not data:
                return b""
            self._pending.extend(self._decoder.feed(data))
        return take_coalesced(self._pending)  # a memoryview is as good to the relay

    async def write(self, data: bytes) -> None:
        self._last_write = asyncio.get_running_loop().time()
        if len(data) <= COALESCE:
            await self.inner.write(chunk_header(len(data)) + data)
        else:  # no copy of a large payload: its header goes first
            self._writing = True
            try:
                await self.inner.write(chunk_header(len(data)))
                await self.inner.write(data)
            finally:
                self._writing = False

    async def close(self, reason: str = "") -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        await self.inner.close(reason)

    def close_now(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        self.inner.close_now()
