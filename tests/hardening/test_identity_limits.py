"""Identity hardening: hashing and key generation off the event loop, login limits (per user
and per source address), expired tokens purged and a bounded validation cache."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mininova.controller import Controller
from mininova.identity.login_limits import LoginLimits, address_key
from mininova.identity.service import IdentityService
from mininova.store import identity as identity_db
from tests.conftest import ApiClient, login
from tests.kit.clock import FakeClock
from tests.kit.fake_cloud import running_controller
from tests.kit.wait import wait_for

TOKENS = "/identity/v3/auth/tokens"
NOT_AUTHENTICATED = "The request you have made requires authentication."
# Only the settings under test are on; each test turns on the ones it needs.
NO_LIMITS = {"lockout_failure_attempts": 0, "login_failures_per_address": 0}


def _auth(user: str, password: str, project: str | None = "admin") -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": password}
            },
        }
    }
    if project is not None:
        auth["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
    return {"auth": auth}


@asynccontextmanager
async def _cloud(
    tmp_path: Path, database_url: str | None, **settings: Any
) -> AsyncIterator[tuple[Controller, ApiClient]]:
    """A controller with `settings` and an admin client on it."""
    async with running_controller(tmp_path, database_url, **settings) as ctl:
        creds = ctl.credentials
        assert creds is not None
        async with aiohttp.ClientSession() as session:
            base = ctl.config.base_url
            token, body = await login(session, base, creds.username, creds.password, "admin")
            yield ctl, ApiClient(base, session, token, body["project"]["id"], body["user"]["id"])


@asynccontextmanager
async def _client_from(source: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session whose connections leave from the loopback address `source`."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def _login(
    session: aiohttp.ClientSession,
    base: str,
    user: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """POST a password login: (status, body, response headers)."""
    async with session.post(base + TOKENS, json=_auth(user, password), headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


def _recording_threads(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Wrap `owner.name` so each call records the thread it ran in (the result is unchanged)."""
    threads: list[int] = []
    real: Callable[..., Any] = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return threads


def _cached(identity: IdentityService) -> int:
    """How many token validations the identity service has cached."""
    return len(identity._cache)


# ---- 1. CPU-heavy crypto off the event loop ---------------------------------------------------


async def test_password_hashing_runs_off_the_event_loop(
    controller: Controller, api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five parallel logins and a user creation: every scrypt runs in a worker thread, so the
    loop keeps serving meanwhile; the logins still succeed and the new password works."""
    creds = controller.credentials
    assert creds is not None
    threads = _recording_threads(monkeypatch, hashlib, "scrypt")
    loop_thread = threading.get_ident()
    logins = [_login(api.session, api.base, creds.username, creds.password) for _ in range(5)]
    assert [status for status, _, _ in await asyncio.gather(*logins)] == [201] * 5
    status, _, _ = await api.post(
        "/identity/v3/users", json={"user": {"name": "u1", "password": "pw-u1"}}
    )
    assert status == 201
    assert len(threads) == 6
    assert loop_thread not in threads
    status, body, _ = await _login(api.session, api.base, "u1", "wrong")
    assert status == 401 and body["error"]["message"] == NOT_AUTHENTICATED


async def test_rsa_key_generation_runs_off_the_event_loop(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /os-keypairs without a public key (ssh and x509): the RSA key is generated in a
    worker thread, and the returned private key still matches the public key."""
    threads = _recording_threads(monkeypatch, rsa, "generate_private_key")
    status, body, _ = await api.post(
        "/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1"}}, version="2.2"
    )
    assert status == 201, body
    keypair = body["keypair"]
    private = serialization.load_pem_private_key(keypair["private_key"].encode(), None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert keypair["public_key"] == public.decode() + " Generated-by-Nova"
    status, body, _ = await api.post(
        "/compute/v2.1/os-keypairs",
        json={"keypair": {"name": "k2", "type": "x509"}},
        version="2.2",
    )
    assert status == 201, body
    assert body["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(threads) == 2
    assert threading.get_ident() not in threads


# ---- 2. login limits ------------------------------------------------------------------------


async def test_lockout_after_failed_passwords(
    tmp_path: Path, database_url: str | None, fake_clock: FakeClock
) -> None:
    """Keystone's lockout: 3 wrong passwords lock the user (even the right password gets 401
    "The account is locked for user: <id>.") until lockout_duration has passed; a success
    resets the count; an admin's new password lifts a lockout."""
    settings = {**NO_LIMITS, "lockout_failure_attempts": 3, "lockout_duration": 300}
    async with _cloud(tmp_path, database_url, **settings) as (ctl, api):
        creds = ctl.credentials
        assert creds is not None
        user, password = creds.username, creds.password
        session, base = api.session, api.base

        for _ in range(2):  # two failures, then a success: the count starts again
            assert (await _login(session, base, user, "wrong"))[0] == 401
        assert (await _login(session, base, user, password))[0] == 201
        for _ in range(2):
            assert (await _login(session, base, user, "wrong"))[0] == 401
        assert (await _login(session, base, user, password))[0] == 201

        for _ in range(3):
            status, body, _ = await _login(session, base, user, "wrong")
            assert status == 401 and body["error"]["message"] == NOT_AUTHENTICATED
        locked = f"The account is locked for user: {api.user_id}."
        for attempt in ("wrong", password):
            status, body, _ = await _login(session, base, user, attempt)
            assert status == 401
            assert body["error"] == {"code": 401, "title": "Unauthorized", "message": locked}
        fake_clock.advance(299)
        assert (await _login(session, base, user, password))[0] == 401
        fake_clock.advance(2)
        assert (await _login(session, base, user, password))[0] == 201

        for _ in range(3):
            assert (await _login(session, base, user, "wrong"))[0] == 401
        assert (await _login(session, base, user, password))[0] == 401
        status, _, _ = await api.patch(
            f"/identity/v3/users/{api.user_id}", json={"user": {"password": "new-pw"}}
        )
        assert status == 200
        assert (await _login(session, base, user, "new-pw"))[0] == 201


async def test_failed_logins_per_address_get_429(
    tmp_path: Path, database_url: str | None, fake_clock: FakeClock
) -> None:
    """After 3 failed logins from one address within the window, its next login (right
    password or not, whatever X-Forwarded-For says) gets 429 with Retry-After; another address
    is not affected; when the window has passed the address may log in again."""
    settings = {**NO_LIMITS, "login_failures_per_address": 3, "login_failures_window": 60}
    async with _cloud(tmp_path, database_url, **settings) as (ctl, api):
        creds = ctl.credentials
        assert creds is not None
        session, base = api.session, api.base
        for n in range(3):  # unknown users, each "forwarded" from somewhere else
            forged = {"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=198.51.100.{n}"}
            assert (await _login(session, base, f"nobody{n}", "x", forged))[0] == 401
        fake_clock.advance(20)
        forged = {"X-Forwarded-For": "203.0.113.9"}
        status, body, headers = await _login(session, base, creds.username, creds.password, forged)
        assert status == 429
        assert body["error"]["code"] == 429 and body["error"]["title"] == "Too Many Requests"
        assert "Retry after 40 seconds" in body["error"]["message"]
        assert headers["Retry-After"] == "40"

        async with _client_from("127.0.0.2") as other:
            assert (await _login(other, base, creds.username, creds.password))[0] == 201

        fake_clock.advance(40)
        assert (await _login(session, base, creds.username, creds.password))[0] == 201


def test_limits_end_when_retry_after_says_whatever_the_clock_reads() -> None:
    """Clock readings where t + 20 + 40 - 60 rounds below t (about 1 % of them): the address
    told "retry after 40" 20 s after its failures may log in 40 s later, and a user locked
    out for 300 s is not locked after 300 s."""
    starts = [t / 100 for t in range(100_000, 200_000) if (t / 100 + 20 + 40) - 60 < t / 100]
    assert starts  # such readings exist
    for start in starts[:50]:
        clock = FakeClock(monotonic_start=start)
        limits = LoginLimits(failures_per_address=3, address_window=60, clock=clock)
        for _ in range(3):
            limits.address_failed("203.0.113.9")
        clock.advance(20)
        assert limits.address_retry_after("203.0.113.9") == 40
        clock.advance(40)
        assert limits.address_retry_after("203.0.113.9") is None, start

        clock = FakeClock(monotonic_start=start)
        limits = LoginLimits(failure_attempts=1, lockout_duration=300, clock=clock)
        limits.user_failed("u1")
        clock.advance(100)
        assert limits.is_locked("u1")
        clock.advance(200)
        assert not limits.is_locked("u1"), start


def test_an_ipv6_host_counts_as_its_64() -> None:
    """One host usually holds a whole IPv6 /64: its addresses share one failure count, as
    does an IPv4-mapped address with its IPv4 form."""
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7") == "192.0.2.7"


async def test_parallel_guesses_cannot_overshoot_the_limits(
    tmp_path: Path, database_url: str | None
) -> None:
    """8 parallel wrong passwords from 8 addresses: exactly 3 are checked, the rest find the
    user locked. 8 parallel guesses from one address: exactly 3 are answered 401, 5 get 429."""
    settings = {
        "lockout_failure_attempts": 3,
        "login_failures_per_address": 3,
        "login_failures_window": 60,
    }
    async with _cloud(tmp_path, database_url, **settings) as (ctl, api):
        base = api.base

        async def guess_from(source: str) -> str:
            async with _client_from(source) as session:
                return (await _login(session, base, "admin", "guess"))[1]["error"]["message"]

        messages = await asyncio.gather(*(guess_from(f"127.0.0.{10 + n}") for n in range(8)))
        locked = f"The account is locked for user: {api.user_id}."
        assert sorted(messages).count(NOT_AUTHENTICATED) == 3
        assert sorted(messages).count(locked) == 5

        status, _, _ = await api.post(
            "/identity/v3/users", json={"user": {"name": "u2", "password": "pw-u2"}}
        )
        assert status == 201
        guesses = [_login(api.session, base, "u2", f"guess{n}") for n in range(8)]
        statuses = [status for status, _, _ in await asyncio.gather(*guesses)]
        assert sorted(statuses) == [401] * 3 + [429] * 5


# ---- 3. expired tokens purged, bounded cache ---------------------------------------------------


async def test_expired_tokens_are_purged_periodically(
    tmp_path: Path, database_url: str | None, fake_clock: FakeClock
) -> None:
    """With token_purge_interval set, tokens past their expiry leave the tokens table and the
    validation cache without anyone asking; unexpired ones stay."""
    settings = {**NO_LIMITS, "token_ttl": 60, "token_purge_interval": 0.05}
    async with _cloud(tmp_path, database_url, **settings) as (ctl, api):
        creds = ctl.credentials
        assert creds is not None and ctl.store is not None and ctl.services is not None
        store, identity = ctl.store, ctl.services.identity
        old = [api.token]
        for _ in range(2):
            status, _, headers = await _login(api.session, api.base, "admin", creds.password)
            assert status == 201
            old.append(headers["X-Subject-Token"])
        assert len(await identity_db.token_hashes(store)) == 3
        fake_clock.advance(61)
        status, _, headers = await _login(api.session, api.base, "admin", creds.password)
        assert status == 201
        fresh = headers["X-Subject-Token"]

        async def only_the_fresh_one_left() -> bool:
            return len(await identity_db.token_hashes(store)) == 1

        await wait_for(only_the_fresh_one_left, 5, 0.02, "the expired tokens to be purged")
        assert _cached(identity) == 1
        status, _, _ = await api.get(TOKENS, token=fresh, headers={"X-Subject-Token": fresh})
        assert status == 200
        for token in old:
            status, _, _ = await api.get(TOKENS, token=fresh, headers={"X-Subject-Token": token})
            assert status == 404


async def test_token_cache_is_bounded(tmp_path: Path, database_url: str | None) -> None:
    """With token_cache_size 3, six tokens issued and validated never make the cache hold more
    than 3 validations; every token still validates (the evicted ones are read again)."""
    async with _cloud(tmp_path, database_url, **NO_LIMITS, token_cache_size=3) as (ctl, api):
        creds = ctl.credentials
        assert creds is not None and ctl.services is not None
        identity = ctl.services.identity
        tokens = []
        for _ in range(6):
            status, _, headers = await _login(api.session, api.base, "admin", creds.password)
            assert status == 201
            tokens.append(headers["X-Subject-Token"])
            assert _cached(identity) <= 3
        for token in tokens:
            status, _, _ = await api.get(TOKENS, headers={"X-Subject-Token": token})
            assert status == 200
            assert _cached(identity) <= 3
