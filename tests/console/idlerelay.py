"""A TCP relay that drops connections idle for longer than `idle_timeout` (like a NAT box or
a load balancer with an idle timeout). Used to prove the console keepalive works."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class IdleDroppingRelay:
    upstream_host: str
    upstream_port: int
    idle_timeout: float
    host: str = "127.0.0.1"
    port: int = 0
    dropped: int = 0
    accepted: int = 0
    _server: asyncio.AbstractServer | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            nonlocal last
            while data := await src.read(65536):
                last = loop.time()
                dst.write(data)
                await dst.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        try:
            while not any(p.done() for p in pumps):
                await asyncio.sleep(0.5)  # the relay's idle-check tick (it is the real timer)
                if loop.time() - last > self.idle_timeout:
                    self.dropped += 1
                    break
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.transport.abort()
            self._tasks.discard(task)
