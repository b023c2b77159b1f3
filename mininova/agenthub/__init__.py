"""The controller's end of the agent links (placeholder)."""

from __future__ import annotations

import asyncio

from aiohttp import web


class AgentHub:
    def __init__(self, services) -> None:
        self.services = services

    def setup(self, app: web.Application) -> None:
        pass

    async def monitor(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass
