"""The agent protocol: a sans-I/O core (`core`) and a thin asyncio shell (`peer`)."""

from mininova.protocol.core import (
    CAPABILITY_HEADER,
    PROTOCOL_VERSION,
    Endpoint,
    ErrorReply,
    Notification,
    ProtocolError,
    Reply,
    Request,
)

__all__ = [
    "CAPABILITY_HEADER",
    "PROTOCOL_VERSION",
    "Endpoint",
    "ErrorReply",
    "Notification",
    "ProtocolError",
    "Reply",
    "Request",
]
