"""Schemathesis against /openapi.json, in a CI-sized dose: every operation, admin and member.

No response is a 5xx, the controller logs no traceback, and SQLite passes its integrity check.
The longer run is `bench/fuzz.sh`; the runner and its exclusions are `bench/fuzz.py`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from bench import fuzz
from mininova.api import openapi
from mininova.controller import Controller
from tests.conftest import ApiClient

C = "/compute/v2.1"
EXAMPLES = 1  # per generation mode and operation; bench/fuzz.sh runs 200


async def test_fuzz_every_operation_as_admin_and_member(
    controller: Controller,
    api: ApiClient,
    member_api: ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    image = await member_api.upload_image()
    server = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "none"}
    status, body, _ = await member_api.post(
        C + "/servers", json={"server": server}, version="2.100"
    )
    assert status == 202, body
    known = {
        "server_id": body["server"]["id"],
        "image_id": image,
        "flavor_id": "1",
        "project_id": member_api.project_id,
        "user_id": member_api.user_id,
    }
    base = controller.config.base_url
    document = openapi.build_document(controller.app.router)
    report = await asyncio.to_thread(
        fuzz.fuzz,
        document,
        base,
        [api.token, member_api.token],
        examples=EXAMPLES,
        known_ids=known,
    )
    summary = report.summary()
    assert summary["operations"] >= 140, summary
    assert report.transport_errors == []
    assert report.server_errors == [], "\n".join(report.server_errors[:10])
    tracebacks = [
        r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR
    ]
    assert tracebacks == []
    # The cloud still answers both users.
    for client in (api, member_api):
        status, _, _ = await client.get(C + "/servers", version="2.100")
        assert status == 200
    if controller.config.database_url.startswith("postgresql"):
        return
    with sqlite3.connect(controller.config.data_dir / "mininova.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# ---- 5xx found by bench/fuzz.sh, fixed, kept as regressions ------------------------------


async def test_flavor_with_a_numeric_string_beyond_the_maximum_is_a_400(api: ApiClient) -> None:
    """Nova bounds numeric strings too: a 26-digit "disk" is a 400, not an SQLite overflow."""
    flavor = {"name": "huge", "ram": 64, "vcpus": "1", "disk": "53182810604904094241333129"}
    status, body, _ = await api.post(C + "/flavors", json={"flavor": flavor}, version="2.100")
    assert status == 400, body
    message = body["badRequest"]["message"]
    assert "flavor/disk" in message and "maximum of 2147483647" in message, message
    flavor["disk"] = "1" * 5000  # too long for int(): still a 400
    status, body, _ = await api.post(C + "/flavors", json={"flavor": flavor}, version="2.100")
    assert status == 400, body
