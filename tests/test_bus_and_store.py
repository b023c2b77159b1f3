"""The in-process bus and the store's transactions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mininova.bus import Bus
from mininova.store import Store, migrate


async def test_call_returns_and_raises_cast_runs() -> None:
    bus = Bus(default_timeout=2)
    seen: list[str] = []

    async def handler(method: str, params: dict) -> object:
        if method == "boom":
            raise ValueError("bad request")
        seen.append(method)
        return params["x"] * 2

    bus.register("svc", handler)
    try:
        assert await bus.call("svc", "double", x=21) == 42
        with pytest.raises(ValueError, match="bad request"):
            await bus.call("svc", "boom")
        bus.cast("svc", "fire")
        await bus.drain()
        assert seen == ["double", "fire"]
        with pytest.raises(LookupError):
            bus.cast("nobody", "x")
    finally:
        await bus.close()


async def test_slow_handler_does_not_block_the_queue() -> None:
    bus = Bus(default_timeout=2)
    release = asyncio.Event()

    async def handler(method: str, params: dict) -> str:
        if method == "slow":
            await release.wait()
        return method

    bus.register("svc", handler)
    try:
        slow = asyncio.create_task(bus.call("svc", "slow"))
        assert await bus.call("svc", "fast") == "fast"
        release.set()
        assert await slow == "slow"
    finally:
        await bus.close()


async def test_failed_transaction_leaves_nothing(tmp_path: Path, database_url: str | None) -> None:
    store = Store(database_url or tmp_path / "db.sqlite")
    await store.open()
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction():
                await store.set_setting("a", "1")
                raise RuntimeError("crash half-way")
        assert await store.get_setting("a") is None
        assert await store.schema_version() == migrate.head()
    finally:
        await store.close()


async def test_reopen_keeps_data_and_schema(tmp_path: Path, database_url: str | None) -> None:
    store = Store(database_url or tmp_path / "db.sqlite")
    await store.open()
    await store.set_setting("k", "v")
    version = await store.schema_version()
    await store.close()
    store = Store(database_url or tmp_path / "db.sqlite")  # the same database again
    await store.open()
    try:
        assert await store.get_setting("k") == "v"
        assert await store.schema_version() == version
    finally:
        await store.close()
