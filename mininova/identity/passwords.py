"""Password hashing (scrypt), with async forms that run off the event loop.

One scrypt costs ~30 ms of CPU and 16 MiB of memory. On the event loop that would stall every
request, heartbeat and console for that long per login, so the API calls `hash_async` and
`check_async`, which run it on a small dedicated thread pool (hashlib releases the GIL while
scrypt runs). The pool is separate from asyncio's default executor so a burst of logins
cannot starve the file and TLS work queued there; its size bounds how many hashes (and
16 MiB buffers) run at once. The stored format and results are the same either way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
# At most this many hashes at once (more would only queue for the same cores).
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))
_pool: ThreadPoolExecutor | None = None


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)


def hash_password(password: str) -> str:
    """`scrypt$<salt b64>$<digest b64>` of `password` with a fresh salt (blocking)."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` result (blocking; False if malformed)."""
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = _scrypt(password, base64.b64decode(salt_b64))
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="mininova-scrypt")
    return _pool


async def hash_async(password: str) -> str:
    """`hash_password` on the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_password, password)


async def check_async(password: str, stored: str) -> bool:
    """`check_password` on the hashing pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), check_password, password, stored)
