"""`mininova doctor`: a clean cloud is clean; each kind of inconsistency, written through the
store into an otherwise consistent state, is reported; the real command as a user types it
(exit code, printed line) beside a running in-process controller."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mininova import cli, doctor
from mininova.config import ServeConfig
from mininova.controller import Controller
from mininova.store import (
    Store,
    allocations,
    console_tokens,
    guest_reports,
    hosts,
    identity,
    images,
    migrations,
)
from mininova.store import instances as instance_rows
from mininova.timeutil import iso, now_iso, now_utc
from tests.conftest import ApiClient
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

HOST = "node1"
FLAVOR = {"id": "1", "name": "m1.nano", "vcpus": 1, "ram": 64, "disk": 1}
IMAGE_DATA = b"disk image bytes " * 64


@dataclass
class Cloud:
    """A consistent state written through the store: one host, one ACTIVE instance with its
    claim, guest and console token, one active image with its file, one live token."""

    store: Store
    config: ServeConfig
    instance: str
    image: str

    async def problems(self) -> list[doctor.Problem]:
        return await doctor.check(self.store, self.config)

    async def kinds(self) -> set[str]:
        return {p.kind for p in await self.problems()}


def _ago(seconds: float) -> str:
    return iso(now_utc() - timedelta(seconds=seconds))


async def _instance(store: Store, host: str | None, **values: Any) -> str:
    uid = str(uuid.uuid4())
    row = {
        "uuid": uid,
        "name": "vm",
        "hostname": "vm",
        "project_id": "p1",
        "user_id": "u1",
        "image_ref": "img",
        "flavor_id": FLAVOR["id"],
        "flavor": FLAVOR,
        "vm_state": "active",
        "host": host,
        "mac_address": "fa:16:3e:00:00:01",
        "reservation_id": "r-1",
        "created_at": _ago(600),
        "updated_at": _ago(600),
    }
    await instance_rows.create(store, {**row, **values})
    return uid


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> Cloud:
    config = ServeConfig(data_dir=tmp_path / "data")
    await hosts.node_connected(store, HOST, {"vcpus": 4, "memory_mb": 4096}, "fake", now_iso())
    inst = await _instance(store, HOST)
    await allocations.claim(store, inst, HOST, 1, 64, 1)
    await guest_reports.record(store, HOST, [{"uuid": inst, "power_state": 1}], now_iso())
    image = str(uuid.uuid4())
    await images.create(
        store,
        {
            "id": image,
            "name": "cirros",
            "status": "active",
            "disk_format": "qcow2",
            "container_format": "bare",
            "size": len(IMAGE_DATA),
            "checksum": hashlib.md5(IMAGE_DATA).hexdigest(),
            "visibility": "public",
            "created_at": now_iso(),
            "updated_at": now_iso(),
        },
    )
    (config.data_dir / "images").mkdir(parents=True)
    (config.data_dir / "images" / image).write_bytes(IMAGE_DATA)
    await identity.insert_token(
        store,
        token_hash="live",
        user_id="u1",
        project_id="p1",
        issued_at=now_iso(),
        expires_at=iso(now_utc() + timedelta(hours=1)),
        audit_id="a1",
    )
    await console_tokens.create(
        store, "c1", inst, "novnc", iso(now_utc() + timedelta(minutes=10)), False, now_iso()
    )
    return Cloud(store, config, inst, image)


async def test_a_consistent_state_is_clean(cloud: Cloud) -> None:
    from mininova.store import doctor_queries

    assert await cloud.problems() == []
    lines = await doctor_queries.integrity_check(cloud.store)
    assert lines == (["ok"] if cloud.store.backend == "sqlite" else [])


async def _migration(cloud: Cloud, instance: str, status: str = "migrating") -> str:
    uid = str(uuid.uuid4())
    await migrations.create(
        cloud.store,
        {
            "uuid": uid,
            "instance_uuid": instance,
            "project_id": "p1",
            "user_id": "u1",
            "migration_type": "resize",
            "source_compute": HOST,
            "dest_compute": HOST,
            "old_flavor": FLAVOR,
            "new_flavor": FLAVOR,
            "status": status,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        },
    )
    return uid


async def _alloc_orphan(c: Cloud) -> None:
    await allocations.claim(c.store, str(uuid.uuid4()), HOST, 1, 64, 1)


async def _alloc_of_deleted(c: Cloud) -> None:
    await instance_rows.mark_deleted(c.store, c.instance, "deleted")
    await console_tokens.delete_for_instance(c.store, c.instance)
    await guest_reports.record(c.store, HOST, [], now_iso())


async def _no_alloc(c: Cloud) -> None:
    await allocations.release(c.store, c.instance)


async def _alloc_elsewhere(c: Cloud) -> None:
    await hosts.node_connected(c.store, "node2", {}, "fake", now_iso())
    await allocations.claim(c.store, c.instance, "node2", 1, 64, 1)


async def _alloc_unknown_host(c: Cloud) -> None:
    await allocations.claim(c.store, await _instance(c.store, "ghost"), "ghost", 1, 64, 1)


async def _unknown_host(c: Cloud) -> None:
    await hosts.delete_node(c.store, HOST)


async def _orphan_guest(c: Cloud) -> None:
    stray = {"uuid": str(uuid.uuid4()), "power_state": 1}
    await guest_reports.record(c.store, HOST, [{"uuid": c.instance}, stray], now_iso())


async def _guest_of_deleted(c: Cloud) -> None:
    other = await _instance(c.store, HOST, vm_state="deleted", deleted=1, deleted_at=_ago(60))
    await guest_reports.record(c.store, HOST, [{"uuid": c.instance}, {"uuid": other}], now_iso())


async def _guest_missing(c: Cloud) -> None:
    await guest_reports.record(c.store, HOST, [], now_iso())


async def _migration_orphan(c: Cloud) -> None:
    await _migration(c, str(uuid.uuid4()))


async def _stuck_spawn(c: Cloud) -> None:
    # the build's spawn_timeout (300 s) × build_retries (3) has long passed
    await _instance(
        c.store, HOST, vm_state="building", task_state="spawning", updated_at=_ago(7200)
    )


async def _stuck_reboot(c: Cloud) -> None:
    # action_timeout is 180 s
    await _instance(c.store, HOST, task_state="rebooting", updated_at=_ago(600))


async def _expired_tokens(c: Cloud) -> None:
    await identity.insert_token(
        c.store,
        token_hash="old",
        user_id="u1",
        project_id="p1",
        issued_at=_ago(3 * 86400),
        expires_at=_ago(2 * 86400),
        audit_id="a2",
    )


async def _console_token_orphan(c: Cloud) -> None:
    await console_tokens.create(
        c.store, "c2", str(uuid.uuid4()), "novnc", iso(now_utc()), False, now_iso()
    )


async def _image_file_missing(c: Cloud) -> None:
    (c.config.data_dir / "images" / c.image).unlink()


async def _image_size(c: Cloud) -> None:
    (c.config.data_dir / "images" / c.image).write_bytes(IMAGE_DATA[:-1])


async def _image_checksum(c: Cloud) -> None:
    (c.config.data_dir / "images" / c.image).write_bytes(IMAGE_DATA.upper())


async def _image_file_orphan(c: Cloud) -> None:
    (c.config.data_dir / "images" / str(uuid.uuid4())).write_bytes(b"x")


async def _partial_upload(c: Cloud) -> None:
    (c.config.data_dir / "images" / f".{c.image}.0123abcd.part").write_bytes(b"x")


INJECTIONS: dict[str, tuple[Callable[[Cloud], Awaitable[None]], str]] = {
    "allocation without any instance": (_alloc_orphan, "allocation_orphan"),
    "allocation of a deleted instance": (_alloc_of_deleted, "allocation_orphan"),
    "placed instance without allocation": (_no_alloc, "instance_without_allocation"),
    "allocation on another host than its instance": (_alloc_elsewhere, "allocation_host_mismatch"),
    "allocation on an unknown host": (_alloc_unknown_host, "allocation_unknown_host"),
    "instance on a deleted host": (_unknown_host, "instance_unknown_host"),
    "guest no instance has": (_orphan_guest, "orphan_guest"),
    "guest of a deleted instance": (_guest_of_deleted, "orphan_guest"),
    "ACTIVE instance its host did not report": (_guest_missing, "guest_missing"),
    "migration in flight without instance": (_migration_orphan, "migration_orphan"),
    "spawn stuck past its timeout": (_stuck_spawn, "stuck_task"),
    "action stuck past its timeout": (_stuck_reboot, "stuck_task"),
    "expired tokens beyond the grace": (_expired_tokens, "tokens_expired"),
    "console token of an unknown instance": (_console_token_orphan, "console_token_orphan"),
    "active image without file": (_image_file_missing, "image_file_missing"),
    "image file of the wrong size": (_image_size, "image_size_mismatch"),
    "image file of the wrong checksum": (_image_checksum, "image_checksum_mismatch"),
    "file without image": (_image_file_orphan, "image_file_orphan"),
    "partial upload file": (_partial_upload, "image_partial_upload"),
}


# The same SELECTs as the clean and work-in-progress tests, which run on every backend: the
# cases differ only in the rows, so they run on the first backend only (CI time).
@pytest.mark.first_backend_only
@pytest.mark.parametrize("case", list(INJECTIONS))
async def test_each_inconsistency_is_reported(cloud: Cloud, case: str) -> None:
    inject, kind = INJECTIONS[case]
    await inject(cloud)
    problems = await cloud.problems()
    assert kind in {p.kind for p in problems}, problems
    assert all(p.message for p in problems)


async def test_work_in_progress_is_not_a_problem(cloud: Cloud) -> None:
    """A snapshot mid-work: an upload in `saving` with its part file, a resize whose source
    claim is held under the migration, a spawn inside its timeout, a report older than the
    instance's change (it became ACTIVE after the last heartbeat)."""
    saving = str(uuid.uuid4())
    await images.create(
        cloud.store,
        {
            "id": saving,
            "status": "saving",
            "visibility": "private",
            "created_at": now_iso(),
            "updated_at": now_iso(),
        },
    )
    (cloud.config.data_dir / "images" / f".{saving}.feed.part").write_bytes(b"x")
    moving = await _migration(cloud, cloud.instance)
    await allocations.claim(cloud.store, moving, HOST, 1, 64, 1)
    await _instance(
        cloud.store, HOST, vm_state="building", task_state="spawning", updated_at=_ago(5)
    )
    await guest_reports.record(cloud.store, HOST, [{"uuid": cloud.instance}], _ago(30))
    fresh = await _instance(cloud.store, HOST, updated_at=now_iso())
    await allocations.claim(cloud.store, fresh, HOST, 1, 64, 1)
    assert await cloud.problems() == []


# ---- a real cloud and the real command ------------------------------------------------------


def _doctor_cli(controller: Controller, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    mininova = str(Path(sys.executable).with_name("mininova"))  # the venv's console script
    cmd = [mininova, "doctor", "--data-dir", str(controller.config.data_dir)]
    if controller.config.database_url:
        cmd += ["--database-url", controller.config.database_url]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.first_backend_only
async def test_doctor_command_on_a_running_cloud(
    controller: Controller, api: ApiClient, tmp_path: Path
) -> None:
    """A cloud with a host, an image and an ACTIVE server, while it serves: `mininova doctor
    --data-dir D` exits 0; with the image's file gone it exits 1 and names the image."""
    async with fake_agent(controller, tmp_path, HOST, api):
        image = await api.upload_image("cirros", IMAGE_DATA)
        status, body, _ = await api.post(
            "/compute/v2.1/servers",
            json={"server": {"name": "vm", "imageRef": image, "flavorRef": "1"}},
        )
        assert status == 202, body
        server = body["server"]["id"]
        await api.wait_server(server, "ACTIVE")

        async def reported() -> bool:
            report = (await guest_reports.all_reports(controller.store)).get(HOST)
            return report is not None and any(g["uuid"] == server for g in report["guests"])

        await wait_for(reported, 10, 0.05, "the host to report the guest")
        assert await doctor.check(controller.store, controller.config) == []

        clean = await asyncio.to_thread(_doctor_cli, controller)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "clean" in clean.stdout

        (controller.config.data_dir / "images" / image).unlink()
        broken = await asyncio.to_thread(_doctor_cli, controller)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"image_file_missing image={image}: active image has no file" in broken.stdout
        assert "1 problem(s)" in broken.stdout

        args = ["doctor", "--data-dir", str(controller.config.data_dir), "--json"]
        if controller.config.database_url:
            args += ["--database-url", controller.config.database_url]
        as_json = await asyncio.to_thread(CliRunner().invoke, cli.main, args)
        assert as_json.exit_code == 1, as_json.output
        found = json.loads(as_json.output)["problems"]
        assert found == [
            {
                "kind": "image_file_missing",
                "ids": {"image": image},
                "message": "active image has no file",
            }
        ]
