"""SQLite's WAL is checkpointed by the store's own task in a worker thread (not by the commit
that fills it, on the loop): the database file takes the writes while the store is open, and
closing the store while a checkpoint runs is safe."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mininova.store import Store, engine
from tests.kit.wait import wait_for


async def _write(store: Store, count: int, tag: str) -> None:
    for n in range(count):
        await store.set_setting(f"{tag}-{n}", "x" * 200)


async def test_the_database_file_takes_the_writes_while_the_store_is_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.sqlite"
    store = Store(path)
    await store.open()
    await store.close()
    await store.open()  # the same store opened again checkpoints too
    try:
        before = os.path.getsize(path)
        await _write(store, 3000, "row")
        await wait_for(lambda: os.path.getsize(path) > before + 300_000, 10, 0.05, "a checkpoint")
        assert await store.get_setting("row-2999") == "x" * 200
    finally:
        await store.close()


async def test_closing_while_checkpoints_run_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "CHECKPOINT_INTERVAL", 0.001)
    path = tmp_path / "store.sqlite"
    for attempt in range(15):
        store = Store(path)
        await store.open()
        await _write(store, 200, f"a{attempt}")
        await asyncio.sleep(attempt * 0.0007)  # close at different points of a checkpoint
        await store.close()
    store = Store(path)
    await store.open()
    try:
        for attempt in range(15):
            assert await store.get_setting(f"a{attempt}-199") == "x" * 200
    finally:
        await store.close()
