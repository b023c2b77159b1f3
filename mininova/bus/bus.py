"""Services talk only through the Bus. Each service owns a queue and a consumer task.

`call` waits for the handler's result (exceptions travel back to the caller); `cast` is
fire-and-forget. Handlers run as their own tasks so one slow request never blocks a queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class BusTimeout(Exception):
    """A call got no answer in time."""


@dataclass
class _Message:
    method: str
    params: dict[str, Any]
    reply: asyncio.Future[Any] | None = None


@dataclass
class _Service:
    name: str
    handler: Handler
    queue: asyncio.Queue[_Message | None] = field(default_factory=asyncio.Queue)
    consumer: asyncio.Task[None] | None = None
    running: set[asyncio.Task[Any]] = field(default_factory=set)


class Bus:
    def __init__(self, default_timeout: float = 120.0) -> None:
        self._services: dict[str, _Service] = {}
        self.default_timeout = default_timeout

    def register(self, name: str, handler: Handler) -> None:
        if name in self._services:
            raise ValueError(f"service {name!r} already registered")
        service = _Service(name, handler)
        service.consumer = asyncio.create_task(self._consume(service), name=f"bus:{name}")
        self._services[name] = service

    async def call(
        self, service: str, method: str, timeout: float | None = None, **params: Any
    ) -> Any:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue(service).put_nowait(_Message(method, params, reply))
        try:
            return await asyncio.wait_for(reply, timeout or self.default_timeout)
        except TimeoutError as exc:
            raise BusTimeout(f"{service}.{method} did not answer") from exc

    def cast(self, service: str, method: str, **params: Any) -> None:
        self._queue(service).put_nowait(_Message(method, params))

    def _queue(self, service: str) -> asyncio.Queue[_Message | None]:
        try:
            return self._services[service].queue
        except KeyError:
            raise LookupError(f"no service {service!r} on the bus") from None

    async def _consume(self, service: _Service) -> None:
        while True:
            message = await service.queue.get()
            if message is None:
                return
            task = asyncio.create_task(self._dispatch(service, message))
            service.running.add(task)
            task.add_done_callback(service.running.discard)

    async def _dispatch(self, service: _Service, message: _Message) -> None:
        try:
            result = await service.handler(message.method, message.params)
        except Exception as exc:  # delivered to the caller, or logged for casts
            if message.reply is not None and not message.reply.done():
                message.reply.set_exception(exc)
            else:
                log.exception("%s.%s failed", service.name, message.method)
            return
        if message.reply is not None and not message.reply.done():
            message.reply.set_result(result)

    async def drain(self) -> None:
        """Wait until every queued and running message has been handled."""
        for service in self._services.values():
            while not service.queue.empty() or service.running:
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        for service in self._services.values():
            service.queue.put_nowait(None)
        for service in self._services.values():
            if service.consumer is not None:
                await service.consumer
            for task in list(service.running):
                task.cancel()
            await asyncio.gather(*service.running, return_exceptions=True)
        self._services.clear()
