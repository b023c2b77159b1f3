"""The one role rule applied to every API request before its handler runs.

`reader` can read and never write: a write (POST/PUT/PATCH/DELETE) under /compute, /image,
/identity or /networking needs the `member` or `admin` role on the token's project. Logging in (POST
/identity/v3/auth/tokens) and revoking a token (DELETE /identity/v3/auth/tokens) are the two
writes anyone may do. Finer rules (admin-only operations, ownership) stay in the handlers; this
check runs first, so a reader gets 403 even for an object that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WRITE_ROLES = frozenset({"member", "admin"})
POLICED_PREFIXES = ("/compute", "/image", "/identity", "/networking")
TOKENS_PATH = "/identity/v3/auth/tokens"
# Writes allowed whatever the roles: log in, and revoke a token (one's own).
ALWAYS_ALLOWED = frozenset({("POST", TOKENS_PATH), ("DELETE", TOKENS_PATH)})


def _policed(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in POLICED_PREFIXES)


def is_write(method: str, path: str) -> bool:
    """Does this request need a writing role?"""
    method = method.upper()
    if method not in WRITE_METHODS or not _policed(path):
        return False
    return (method, path.rstrip("/")) not in ALWAYS_ALLOWED


def can_write(roles: Iterable[str]) -> bool:
    return any(role.lower() in WRITE_ROLES for role in roles)


def denial(method: str, path: str, roles: Iterable[str]) -> str | None:
    """None if the request is allowed; otherwise the message of the 403."""
    if not is_write(method, path) or can_write(roles):
        return None
    action = f"{method.upper()} {path}"
    if path.startswith("/identity"):
        return (
            f"You are not authorized to perform the requested action: {action} "
            "(read-only: the member or admin role is required)."
        )
    return (
        f"Policy doesn't allow {action} to be performed "
        "(read-only: the member or admin role is required)."
    )
