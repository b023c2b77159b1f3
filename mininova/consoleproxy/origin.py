"""Origin checks for the browser websocket (cross-site websocket hijacking protection)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(url: str) -> tuple[str, str, int] | None:
    """`scheme://host[:port]` -> (scheme, host, port) with default ports filled in."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host or port is None:
        return None
    return scheme, host, port


def check_origin(
    origin: str | None, public_url: str, extra_allowed: Iterable[str] = ()
) -> tuple[bool, str]:
    """Is a websocket with this `Origin` header allowed? Returns (allowed, reason).

    No Origin header: a non-browser client (browsers always send one on websockets) -> allowed.
    Otherwise scheme, host and port must equal the controller's public URL (or one of
    `extra_allowed`).
    """
    if origin is None or origin == "":
        return True, "no Origin header (non-browser client)"
    if origin == "null":
        return False, "opaque Origin 'null'"
    got = normalize_origin(origin)
    if got is None:
        return False, f"malformed Origin {origin!r}"
    for allowed in (public_url, *extra_allowed):
        if normalize_origin(allowed) == got:
            return True, "same origin"
    want = normalize_origin(public_url)
    expected = f"{want[0]}://{want[1]}:{want[2]}" if want else public_url
    return False, f"Origin {origin!r} does not match {expected}"
