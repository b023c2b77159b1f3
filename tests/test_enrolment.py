"""Join tokens and host credentials on a real store; the QEMU reachability check."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mininova.paths import QemuIdentity, qemu_access_problem
from mininova.store import Store
from mininova.trust import enrolment
from mininova.trust.enrolment import EnrolmentRefused
from tests.kit.clock import FakeClock
from tests.kit.pg_fixtures import stored_text


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None):
    st = Store(database_url or tmp_path / "db.sqlite")
    await st.open()
    try:
        yield st
    finally:
        await st.close()


async def test_token_is_traded_once_per_use_and_hashed(
    store: Store, tmp_path: Path, database_url: str | None
) -> None:
    secret, token = await enrolment.create_join_token(store, ttl=60, uses=1)
    assert secret.startswith(f"mnj_{token.id}.") and token.state == "valid"
    credential = await enrolment.enrol_host(store, secret, "h1")
    assert await enrolment.host_for_credential(store, credential) == "h1"
    with pytest.raises(EnrolmentRefused, match=f"join token {token.id} is used up"):
        await enrolment.enrol_host(store, secret, "h2")
    if database_url is None:
        raw = (tmp_path / "db.sqlite").read_bytes() + (tmp_path / "db.sqlite-wal").read_bytes()
    else:  # PostgreSQL: every stored value instead of the file's bytes
        raw = (await stored_text(store)).encode()
    assert secret.encode() not in raw and credential.encode() not in raw


async def test_bound_name_needs_its_credential(store: Store) -> None:
    secret, _ = await enrolment.create_join_token(store, ttl=60)
    first = await enrolment.enrol_host(store, secret, "h1")
    with pytest.raises(EnrolmentRefused, match="already enrolled"):
        await enrolment.enrol_host(store, secret, "h1")
    assert await enrolment.host_for_credential(store, first) == "h1"  # untouched
    assert await enrolment.revoke_host(store, "h1")
    with pytest.raises(EnrolmentRefused, match="was revoked"):
        await enrolment.host_for_credential(store, first)
    again = await enrolment.enrol_host(store, secret, "h1")  # a revoked host may re-join
    assert again != first and await enrolment.host_for_credential(store, again) == "h1"


async def test_concurrent_enrolments_of_one_name(store: Store) -> None:
    secret, _ = await enrolment.create_join_token(store, ttl=60)
    results = await asyncio.gather(
        *(enrolment.enrol_host(store, secret, "same") for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, str) for r in results) == 1
    assert all(isinstance(r, EnrolmentRefused) for r in results if not isinstance(r, str))


async def test_expired_revoked_unknown(store: Store, fake_clock: FakeClock) -> None:
    expired, _ = await enrolment.create_join_token(store, ttl=1)
    revoked, token = await enrolment.create_join_token(store, ttl=60)
    assert await enrolment.revoke_join_token(store, token.id)
    assert not await enrolment.revoke_join_token(store, token.id)
    fake_clock.advance(1.1)
    with pytest.raises(EnrolmentRefused, match="is expired"):
        await enrolment.check_join_token(store, expired)
    with pytest.raises(EnrolmentRefused, match="is revoked"):
        await enrolment.check_join_token(store, revoked)
    with pytest.raises(EnrolmentRefused, match="unknown join token"):
        await enrolment.check_join_token(store, "mnj_00000000.nope")
    states = {t.id: t.state for t in await enrolment.list_join_tokens(store)}
    assert sorted(states.values()) == ["expired", "revoked"]


def test_qemu_access_check() -> None:
    qemu = QemuIdentity("qemu-test", uid=4242, gid=4242, groups=frozenset({4242}))
    tmp = Path(tempfile.mkdtemp(dir="/var/tmp"))  # parents searchable by everyone
    try:
        _check_access(tmp, qemu)
    finally:
        shutil.rmtree(tmp)


def _check_access(tmp_path: Path, qemu: QemuIdentity) -> None:
    private = tmp_path / "private"
    guests = private / "guests"
    guests.mkdir(parents=True)
    os.chmod(tmp_path, 0o711)
    os.chmod(private, 0o700)
    problem = qemu_access_problem(guests, qemu)
    assert problem and f"{private} (mode 0700" in problem and "qemu-test" in problem
    os.chmod(private, 0o711)
    os.chmod(guests, 0o750)
    problem = qemu_access_problem(guests, qemu)  # group is root's, not QEMU's
    assert problem and str(guests) in problem
    if os.geteuid() == 0:
        os.chown(guests, 0, 4242)
        assert qemu_access_problem(guests, qemu) is None
    else:
        os.chmod(guests, 0o711)
        assert qemu_access_problem(guests, qemu) is None
