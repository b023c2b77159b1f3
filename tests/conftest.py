"""Shared fixtures: an in-process controller on a free loopback port, and API helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mininova import timeutil
from mininova.controller import Controller
from mininova.store import Store
from mininova.virt.fake import FakeDriver
from tests.kit.clock import FakeClock
from tests.kit.fake_cloud import fake_agent, running_controller
from tests.kit.net import free_port
from tests.kit.wait import wait_for

__all__ = ["ApiClient", "free_port", "login"]

# postgres_server, postgres_database, database_backend, database_url (MININOVA_TEST_DATABASE)
pytest_plugins = ["tests.kit.pg_fixtures"]


@pytest.fixture
async def store(tmp_path: Path, database_url: str | None) -> AsyncIterator[Store]:
    """A migrated, empty store: SQLite in tmp_path, or a fresh PostgreSQL database when
    MININOVA_TEST_DATABASE=postgresql (test modules may define their own)."""
    s = Store(database_url or tmp_path / "store.sqlite")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def fake_clock() -> Iterator[FakeClock]:
    """A FakeClock installed as mininova's process clock (timeutil) for the test."""
    clock = FakeClock()
    with timeutil.use_clock(clock):
        yield clock


@dataclass
class ApiClient:
    """Minimal authenticated HTTP client for API tests."""

    base: str
    session: aiohttp.ClientSession
    token: str
    project_id: str
    user_id: str

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None | bool = True,
        version: str | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        hdrs = dict(headers or {})
        if token is True:
            hdrs["X-Auth-Token"] = self.token
        elif isinstance(token, str):
            hdrs["X-Auth-Token"] = token
        if version:
            hdrs["OpenStack-API-Version"] = f"compute {version}"
        async with self.session.request(
            method, self.base + path, json=json, data=data, headers=hdrs
        ) as resp:
            raw = await resp.read()
            try:
                body = await resp.json(content_type=None) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            return resp.status, body, resp

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("PUT", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("DELETE", path, **kw)

    async def patch(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("PATCH", path, **kw)

    async def upload_image(self, name: str = "img", data: bytes = b"x" * 1024) -> str:
        """Create and upload a small qcow2-labelled image; returns its id."""
        status, image, _ = await self.post(
            "/image/v2/images",
            json={"name": name, "disk_format": "qcow2", "container_format": "bare"},
        )
        assert status == 201, image
        status, _, _ = await self.put(
            f"/image/v2/images/{image['id']}/file",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert status == 204
        return image["id"]

    async def wait_server(self, uuid: str, *statuses: str, timeout: float = 15.0) -> dict:
        """Poll GET /servers/{uuid} (at 2.100) until its status is one of `statuses`."""
        last: dict[str, Any] = {}

        async def reached() -> dict | None:
            _, body, _ = await self.get(f"/compute/v2.1/servers/{uuid}", version="2.100")
            last["body"] = body
            return body["server"] if body["server"]["status"] in statuses else None

        return await wait_for(
            reached, timeout, 0.05, lambda: f"{uuid} to reach {statuses}: {last.get('body')}"
        )


async def login(
    session: aiohttp.ClientSession, base: str, user: str, password: str, project: str
) -> tuple[str, dict]:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "domain": {"name": "Default"}, "password": password}
                },
            },
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
        }
    }
    async with session.post(base + "/identity/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"], (await resp.json())["token"]


@pytest.fixture
async def controller(tmp_path: Path, database_url: str | None) -> AsyncIterator[Controller]:
    async with running_controller(tmp_path, database_url) as ctl:
        yield ctl


@pytest.fixture
async def api(controller: Controller) -> AsyncIterator[ApiClient]:
    """An admin client against the in-process controller."""
    base = controller.config.base_url
    async with aiohttp.ClientSession() as session:
        creds = controller.credentials
        assert creds is not None
        token, body = await login(session, base, creds.username, creds.password, creds.project)
        yield ApiClient(base, session, token, body["project"]["id"], body["user"]["id"])


@pytest.fixture
async def fake_driver(
    api: ApiClient, controller: Controller, tmp_path: Path
) -> AsyncIterator[FakeDriver]:
    """One in-process fake agent joined to `controller` (host node1) and reading up; its
    driver."""
    async with fake_agent(controller, tmp_path, api=api) as fake:
        yield fake


@pytest.fixture
async def member_api(api: ApiClient) -> AsyncIterator[ApiClient]:
    """A client for a fresh project whose user holds only the member role."""
    status, project, _ = await api.post(
        "/identity/v3/projects", json={"project": {"name": "class1"}}
    )
    assert status == 201, project
    pid = project["project"]["id"]
    status, user, _ = await api.post(
        "/identity/v3/users",
        json={"user": {"name": "student1", "password": "s3cret", "default_project_id": pid}},
    )
    assert status == 201, user
    uid = user["user"]["id"]
    _, roles, _ = await api.get("/identity/v3/roles?name=member")
    rid = roles["roles"][0]["id"]
    status, _, _ = await api.put(f"/identity/v3/projects/{pid}/users/{uid}/roles/{rid}")
    assert status == 204
    token, body = await login(api.session, api.base, "student1", "s3cret", "class1")
    yield ApiClient(api.base, api.session, token, pid, uid)
