"""consoleauth: random hashed tokens, TTL (on the fake clock), single use, revocation."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.config import ServeConfig
from mininova.consoleauth import (
    EXPIRED,
    INSTANCE_GONE,
    INVALID,
    NOT_RUNNING,
    USED,
    WRONG_INSTANCE,
    ConsoleAuth,
    ConsoleAuthError,
)
from mininova.store import Store, console_tokens, instances
from tests.kit.clock import FakeClock
from tests.kit.rows import add_instance


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None) -> AsyncIterator[Store]:
    s = Store(database_url or tmp_path / "db.sqlite")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def auth(store: Store, fake_clock: FakeClock) -> tuple[ConsoleAuth, FakeClock]:
    """ConsoleAuth reading the process clock, which the `fake_clock` fixture replaced."""
    await add_instance(store, "i-1", name="alpha")
    await add_instance(store, "i-2", name="beta")
    return ConsoleAuth(store, ServeConfig()), fake_clock


async def refused(auth: ConsoleAuth, token: str, **kw) -> str:  # noqa: ANN003
    with pytest.raises(ConsoleAuthError) as info:
        await auth.check(token, **kw)
    return info.value.reason


async def test_tokens_are_random_and_stored_hashed(auth, store: Store) -> None:
    ca, _ = auth
    tokens = {(await ca.authorize("i-1"))["token"] for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(t) >= 43 for t in tokens)  # 32 random bytes, urlsafe base64
    rows = await console_tokens.list_tokens(store)
    assert {r["token_hash"] for r in rows} == {
        hashlib.sha256(t.encode()).hexdigest() for t in tokens
    }
    dump = repr(rows)
    assert not any(t in dump for t in tokens)


async def test_check_returns_instance_and_host(auth) -> None:
    ca, _ = auth
    token = (await ca.authorize("i-1"))["token"]
    info = await ca.check(token)
    assert info["instance_uuid"] == "i-1" and info["host"] == "node1"
    assert info["name"] == "alpha" and info["console_type"] == "novnc"


async def test_ttl_on_the_process_clock(auth, caplog: pytest.LogCaptureFixture) -> None:
    ca, clock = auth
    token = (await ca.authorize("i-1"))["token"]
    clock.advance(599)
    await ca.check(token)
    clock.advance(2)
    with caplog.at_level(logging.WARNING):
        assert await refused(ca, token) == EXPIRED
    assert "expired" in caplog.text
    assert token not in caplog.text
    assert await refused(ca, token) == EXPIRED
    assert await ca.purge_expired() == 1
    assert await refused(ca, token) == INVALID


async def test_an_injected_clock_wins(store: Store, fake_clock: FakeClock) -> None:
    own = FakeClock(fake_clock.now())
    await add_instance(store, "i-1")
    ca = ConsoleAuth(store, ServeConfig(), clock=own)
    token = (await ca.authorize("i-1", ttl=5))["token"]
    fake_clock.advance(10)  # the process clock moving does not matter ...
    await ca.check(token)
    own.advance(10)  # ... the injected one does
    assert await refused(ca, token) == EXPIRED


async def test_custom_ttl_and_purge(auth, store: Store) -> None:
    ca, clock = auth
    await ca.authorize("i-1", ttl=5)
    await ca.authorize("i-1", ttl=50)
    clock.advance(10)
    assert await ca.purge_expired() == 1
    assert len(await console_tokens.list_tokens(store)) == 1


async def test_single_use(auth) -> None:
    ca, _ = auth
    token = (await ca.authorize("i-1", single_use=True))["token"]
    await ca.check(token, consume=False)  # the console page's pre-check does not use it
    await ca.check(token, consume=False)
    await ca.check(token)
    assert await refused(ca, token) == USED
    assert await refused(ca, token, consume=False) == USED
    multi = (await ca.authorize("i-1"))["token"]
    await ca.check(multi)
    await ca.check(multi)


async def test_single_use_from_config(store: Store) -> None:
    await add_instance(store, "i-9")
    ca = ConsoleAuth(store, ServeConfig(console_single_use=True))
    token = (await ca.authorize("i-9"))["token"]
    await ca.check(token)
    assert await refused(ca, token) == USED


async def test_bound_to_one_instance(auth) -> None:
    ca, _ = auth
    token = (await ca.authorize("i-1"))["token"]
    assert await refused(ca, token, instance_uuid="i-2") == WRONG_INSTANCE
    assert (await ca.check(token, instance_uuid="i-1"))["instance_uuid"] == "i-1"


async def test_forged_and_malformed(auth, caplog: pytest.LogCaptureFixture) -> None:
    ca, _ = auth
    real = (await ca.authorize("i-1"))["token"]
    with caplog.at_level(logging.WARNING):
        assert await refused(ca, real[:-1] + ("A" if real[-1] != "A" else "B")) == INVALID
        assert await refused(ca, "") == INVALID
        assert await refused(ca, "x" * 5000) == INVALID
    assert "unknown token" in caplog.text


async def test_revoke_instance(auth) -> None:
    ca, _ = auth
    t1 = (await ca.authorize("i-1"))["token"]
    t2 = (await ca.authorize("i-1"))["token"]
    other = (await ca.authorize("i-2"))["token"]
    assert await ca.handle("revoke_instance", {"uuid": "i-1"}) == 2
    assert await refused(ca, t1) == INVALID
    assert await refused(ca, t2) == INVALID
    await ca.check(other)
    assert await ca.revoke(other) == 1
    assert await refused(ca, other) == INVALID


async def test_deleted_or_stopped_instance(auth, store: Store) -> None:
    ca, _ = auth
    token = (await ca.authorize("i-1"))["token"]
    await instances.update(store, "i-1", vm_state="stopped")
    assert await refused(ca, token) == NOT_RUNNING
    await instances.update(store, "i-1", vm_state="deleted", deleted=1)
    assert await refused(ca, token) == INSTANCE_GONE
    assert await refused(ca, token) == INVALID  # and its tokens are gone


async def test_bus_dispatch(auth) -> None:
    ca, _ = auth
    result = await ca.handle("authorize", {"instance_uuid": "i-2"})
    assert (await ca.handle("check", {"token": result["token"]}))["name"] == "beta"
    with pytest.raises(LookupError):
        await ca.handle("nope", {})
    with pytest.raises(ValueError):
        await ca.authorize("i-2", console_type="spice-html5")
