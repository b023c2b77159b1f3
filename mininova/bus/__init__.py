"""The in-process message bus: asyncio queues, call (request/response) and cast."""

from mininova.bus.bus import Bus, BusTimeout, Handler

__all__ = ["Bus", "BusTimeout", "Handler"]
