"""Polling until something is true, with one timeout message format everywhere."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "",
) -> T:
    """Call `predicate` (sync or async) until it returns something truthy; return that.

    Raises AssertionError after `timeout` seconds of the event loop's real clock; `message`
    (a string, or a callable evaluated at the timeout for the latest state) says what was
    awaited. The predicate is always tried once more at the deadline.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last_try = loop.time() >= deadline
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if last_try:
            what = message() if callable(message) else message
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what or _name(predicate)}"
            )
        await asyncio.sleep(min(interval, max(0.0, deadline - loop.time())))


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.25,
    message: str | Callable[[], str] = "",
) -> T:
    """`wait_for` for synchronous tests driving real processes (blocks the thread)."""
    deadline = time.monotonic() + timeout
    while True:
        last_try = time.monotonic() >= deadline
        value = predicate()
        if value:
            return value
        if last_try:
            what = message() if callable(message) else message
            raise AssertionError(
                f"timed out after {timeout:g}s waiting for {what or _name(predicate)}"
            )
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def _name(predicate: Any) -> str:
    return getattr(predicate, "__qualname__", None) or repr(predicate)


async def settle(rounds: int = 50) -> None:
    """Let every ready task run for `rounds` loop iterations, with no real time passing.

    For in-memory code (no sockets, no timers): after `settle()` whatever could progress has,
    so a test can assert that something did *not* happen without sleeping for "long enough".
    """
    for _ in range(rounds):
        await asyncio.sleep(0)
