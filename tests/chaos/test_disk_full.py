"""The controller's disk full: an in-process controller whose data dir (the SQLite database and
the image store) is a small tmpfs, filled up with a filler file, and one fake agent.

While the disk is full: an image upload answers Glance's 413 ("Image storage media is full")
with the partial file gone and the image back to `queued`; a server create answers 507 with a
Nova-shaped body and records nothing; reads (GET /servers, token validation) keep working.
Once the filler is deleted, uploads and creates work again. Needs root (mount); the database
is always SQLite here because the tmpfs holds it (PostgreSQL's disk full, SQLSTATE 53100, is
mapped by the same code and checked without a full disk below).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mininova.errors import StorageFull
from mininova.store import engine
from tests.conftest import ApiClient, login
from tests.kit.fake_cloud import fake_agent, running_controller
from tests.kit.wait import wait_for

SERVERS = "/compute/v2.1/servers"
TMPFS_SIZE = "24m"


@contextlib.contextmanager
def small_tmpfs(path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the controller's data dir needs root")
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, *, leave: int = 0, name: str = "filler") -> Path:
    """Write a filler file until the file system has no room left, then give `leave` bytes
    back; return the file."""
    filler = path / name
    with open(filler, "wb", buffering=0) as fh:
        for block in (256 * 1024, 512):  # big blocks, then the last partial one
            try:
                while True:
                    fh.write(b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        if leave:
            fh.truncate(max(0, fh.tell() - leave))
    return filler


def part_files(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "images").glob(".*.part"))


async def host_state(api: ApiClient, state: str) -> bool:
    _, body, _ = await api.get("/compute/v2.1/os-hypervisors/detail", version="2.88")
    return [h["state"] for h in body["hypervisors"]] == [state]


async def create_server(api: ApiClient, image: str, name: str) -> tuple[int, dict]:
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    status, resp, _ = await api.post(SERVERS, json=body, version="2.100")
    return status, resp


async def new_image(api: ApiClient, name: str) -> str:
    status, image, _ = await api.post(
        "/image/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare"}
    )
    assert status == 201, image
    return str(image["id"])


async def upload(api: ApiClient, image: str, size: int) -> tuple[int, object]:
    status, body, _ = await api.put(
        f"/image/v2/images/{image}/file",
        data=b"\1" * size,
        headers={"Content-Type": "application/octet-stream"},
    )
    return status, body


async def test_full_disk_answers_413_and_507_keeps_reads_and_recovers(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "data") as data:
        async with (
            running_controller(tmp_path, None, data_dir=data) as ctl,
            aiohttp.ClientSession() as session,
        ):
            creds = ctl.credentials
            assert creds is not None
            base = ctl.config.base_url
            token, body = await login(session, base, creds.username, creds.password, creds.project)
            api = ApiClient(base, session, token, body["project"]["id"], body["user"]["id"])
            async with fake_agent(ctl, tmp_path, api=api):
                booted = await new_image(api, "boot")
                assert (await upload(api, booted, 64 * 1024))[0] == 204
                status, first = await create_server(api, booted, "before")
                assert status == 202, first
                await api.wait_server(first["server"]["id"], "ACTIVE")
                waiting = await new_image(api, "big")

                # An upload that runs out of room half-way: Glance's 413, no partial file left,
                # the image back to `queued`.
                filler = fill(data, leave=1024 * 1024)
                status, full = await upload(api, waiting, 4 * 1024 * 1024)
                assert status == 413, full
                assert isinstance(full, dict), full
                assert full["overLimit"]["message"].startswith("Image storage media is full")
                assert part_files(data) == []
                status, image, _ = await api.get(f"/image/v2/images/{waiting}")
                assert (status, image["status"]) == (200, "queued")

                # No room at all: a create's database writes fail → 507, nothing recorded.
                fill(data, name="filler2")
                status, refused = await create_server(api, booted, "during")
                assert status == 507, refused
                assert refused["computeFault"]["code"] == 507
                assert "disk space" in refused["computeFault"]["message"]
                # ... and so does an upload that cannot even start (its status change).
                status, full = await upload(api, waiting, 1024)
                assert status == 507, full
                # Reads keep working: the server list, the image, token validation.
                status, listed, _ = await api.get(SERVERS)
                assert status == 200
                assert [s["name"] for s in listed["servers"]] == ["before"]
                status, image, _ = await api.get(f"/image/v2/images/{waiting}")
                assert (status, image["status"]) == (200, "queued")
                status, _, _ = await api.get(
                    "/identity/v3/auth/tokens", headers={"X-Subject-Token": token}
                )
                assert status == 200

                # Heartbeats cannot be stored either: the host reads down meanwhile.
                await wait_for(lambda: host_state(api, "down"), 10, 0.1, "node1 to read down")

                # Space returns: the host is up again, the same upload and a create work.
                filler.unlink()
                (data / "filler2").unlink()
                await wait_for(lambda: host_state(api, "up"), 10, 0.1, "node1 to read up again")
                assert (await upload(api, waiting, 4 * 1024 * 1024))[0] == 204
                status, image, _ = await api.get(f"/image/v2/images/{waiting}")
                assert image["status"] == "active"
                status, after = await create_server(api, booted, "after")
                assert status == 202, after
                await api.wait_server(after["server"]["id"], "ACTIVE")
                _, listed, _ = await api.get(SERVERS)
                assert sorted(s["name"] for s in listed["servers"]) == ["after", "before"]


class _DiskFullError(Exception):
    """What asyncpg raises for SQLSTATE 53100 (asyncpg.exceptions.DiskFullError)."""

    sqlstate = "53100"


class _FullConnection:
    async def execute(self, sql: str, *args: object) -> str:
        raise _DiskFullError("could not extend file: No space left on device")

    async def fetch(self, sql: str, *args: object) -> list:
        raise _DiskFullError("could not extend file: No space left on device")


async def test_postgresql_disk_full_is_the_same_domain_error() -> None:
    backend = engine._PostgresBackend("postgresql://unused/db")
    for want_rows in (False, True):
        with pytest.raises(StorageFull):
            await backend.run(_FullConnection(), "INSERT …", [], want_rows=want_rows)
