"""Thin asyncio shell over the sans-I/O Endpoint: futures for calls, a dispatch table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mininova.protocol.core import (
    FAILED,
    INVALID_PARAMS,
    TIMEOUT,
    UNKNOWN_METHOD,
    Endpoint,
    ErrorReply,
    Notification,
    ProtocolError,
    Reply,
    Request,
)

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
MethodHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class Peer:
    """Runs one side of a link. Feed it incoming frames; it sends through `send`.

    Handlers raise ProtocolError for a coded error, ValueError/KeyError/TypeError for bad
    params; any other exception becomes a `failed` error reply and is logged.
    """

    def __init__(self, send: Send, handlers: dict[str, MethodHandler], name: str = "peer"):
        self.endpoint = Endpoint()
        self._send = send
        self.handlers = handlers
        self.name = name
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> Any:
        if self.closed:
            raise ProtocolError("link_down", f"{self.name} link is closed")
        request_id, frame = self.endpoint.request(method, params)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        try:
            await self._send(frame)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise ProtocolError(TIMEOUT, f"{method} got no reply in {timeout:g}s") from None
        finally:
            self._waiters.pop(request_id, None)
            self.endpoint.abandon(request_id)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        if not self.closed:
            await self._send(self.endpoint.notify(method, params))

    async def feed(self, frame: str | bytes) -> None:
        event, answer = self.endpoint.receive(frame)
        if answer is not None:
            log.warning("%s: rejected frame: %s", self.name, answer)
            await self._safe_send(answer)
        if isinstance(event, Reply):
            future = self._waiters.get(event.id)
            if future and not future.done():
                future.set_result(event.result)
        elif isinstance(event, ErrorReply):
            future = self._waiters.get(event.id) if event.id is not None else None
            if future and not future.done():
                future.set_exception(ProtocolError(event.code, event.message))
        elif isinstance(event, Request | Notification):
            task = asyncio.create_task(self._handle(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, event: Request | Notification) -> None:
        request_id = event.id if isinstance(event, Request) else None
        handler = self.handlers.get(event.method)
        if handler is None:
            if request_id is not None:
                await self._safe_send(
                    self.endpoint.reply_error(
                        request_id, UNKNOWN_METHOD, f"unknown method {event.method!r}"
                    )
                )
            return
        try:
            result = await handler(event.params)
        except ProtocolError as exc:
            reply = self.endpoint.reply_error(request_id, exc.code, exc.message)
        except (ValueError, KeyError, TypeError) as exc:
            reply = self.endpoint.reply_error(request_id, INVALID_PARAMS, f"{exc!s}")
        except Exception as exc:
            log.exception("%s: %s failed", self.name, event.method)
            reply = self.endpoint.reply_error(request_id, FAILED, str(exc) or type(exc).__name__)
        else:
            reply = self.endpoint.reply(request_id, result) if request_id is not None else None
        if request_id is not None and reply is not None:
            await self._safe_send(reply)

    async def _safe_send(self, frame: str) -> None:
        if self.closed:
            return
        try:
            await self._send(frame)
        except Exception as exc:  # link broke while answering
            log.info("%s: send failed: %s", self.name, exc)

    def close(self, reason: str = "link closed") -> None:
        """The transport is gone: fail every waiting call.

        Handlers already running are left to finish (a half-done spawn must not be torn
        down mid-way); their replies are dropped and the reconnect resync settles the state.
        """
        self.closed = True
        self.endpoint.fail_all()
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(ProtocolError("link_down", reason))
        self._waiters.clear()
