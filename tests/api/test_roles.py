"""Roles mean what they say: `reader` reads and never writes, `member` writes in its project,
`admin` keeps everything; role removal and disabling reach tokens that are already issued."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from mininova.controller import Controller
from mininova.identity.service import TOKEN_CACHE_TTL
from mininova.store import Store
from mininova.store import identity as identity_db
from tests.api.cli import run_openstack
from tests.conftest import ApiClient, login
from tests.kit.wait import wait_for

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
POLICED = ("/compute", "/image", "/identity")
# The only writes a reader may do: log in, and revoke a token.
ALLOWED = {("POST", "/identity/v3/auth/tokens"), ("DELETE", "/identity/v3/auth/tokens")}
DUMMY_ID = "0badc0de-0000-4000-8000-000000000000"
SERVERS = "/compute/v2.1/servers"


# ---- helpers ---------------------------------------------------------------------------------


async def _role_id(api: ApiClient, name: str) -> str:
    status, body, _ = await api.get(f"/identity/v3/roles?name={name}")
    assert status == 200 and len(body["roles"]) == 1, body
    return body["roles"][0]["id"]


async def add_user(api: ApiClient, project_id: str, name: str, *roles: str) -> ApiClient:
    """A new user holding `roles` on the project, logged in to it."""
    status, user, _ = await api.post(
        "/identity/v3/users",
        json={"user": {"name": name, "password": "pw-" + name, "default_project_id": project_id}},
    )
    assert status == 201, user
    uid = user["user"]["id"]
    for role in roles:
        rid = await _role_id(api, role)
        status, body, _ = await api.put(
            f"/identity/v3/projects/{project_id}/users/{uid}/roles/{rid}"
        )
        assert status == 204, body
    _, project, _ = await api.get(f"/identity/v3/projects/{project_id}")
    token, _ = await login(api.session, api.base, name, "pw-" + name, project["project"]["name"])
    return ApiClient(api.base, api.session, token, project_id, uid)


@pytest.fixture
async def reader_api(api: ApiClient, member_api: ApiClient) -> ApiClient:
    """A user holding only `reader` on member_api's project."""
    return await add_user(api, member_api.project_id, "reader1", "reader")


def write_routes(app: Any) -> list[tuple[str, str]]:
    """Every (method, path template) of the app that writes under /compute, /image, /identity.

    Taken from the live route table, so a write route added later is covered automatically."""
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if not path.startswith(POLICED):
            continue
        methods = WRITE_METHODS if route.method == "*" else (route.method,)
        for method in methods:
            if method in WRITE_METHODS and (method, path.rstrip("/")) not in ALLOWED:
                found.add((method, path))
    return sorted(found)


def fill(template: str) -> str:
    """A concrete path for a route template: every {param} becomes a dummy id."""
    return re.sub(r"\{[^}]+\}", DUMMY_ID, template)


async def wait_status(client: ApiClient, path: str, want: int, timeout: float = 5.0) -> float:
    """Poll GET path with client's token until it answers `want`; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    last: dict[str, Any] = {}

    async def answers() -> bool:
        last["status"], last["body"], _ = await client.get(path)
        return last["status"] == want

    await wait_for(answers, timeout, 0.1, lambda: f"GET {path} to answer {want}, not {last}")
    return loop.time() - start


def forbidden_problem(path: str, status: int, body: Any) -> str | None:
    """None if (status, body) is the service's own 403 from the central read-only check."""
    if status != 403:
        return f"status {status}: {body}"
    if path.startswith("/identity"):
        err = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(err, dict) and err.get("code") == 403 and err.get("title") == "Forbidden"
    else:
        err = body.get("forbidden") if isinstance(body, dict) else None
        ok = isinstance(err, dict) and err.get("code") == 403 and set(err) == {"code", "message"}
    if not ok:
        return f"403 with a wrong error body: {body}"
    if "read-only" not in err["message"]:
        return f"403 not from the central role check (it must run before the handler): {body}"
    return None


# ---- reader: no writes anywhere -------------------------------------------------------------


async def test_reader_gets_403_on_every_write_route(
    controller: Controller, reader_api: ApiClient
) -> None:
    routes = write_routes(controller.app)
    # Sanity: the enumeration really sees the three APIs' write routes.
    assert len(routes) >= 40, routes
    for known in (
        ("POST", "/compute/v2.1/servers"),
        ("DELETE", "/compute/v2.1/servers/{server_id}"),
        ("POST", "/compute/v2.1/servers/{server_id}/action"),
        ("POST", "/image/v2/images"),
        ("PUT", "/image/v2/images/{image_id}/file"),
        ("PATCH", "/identity/v3/projects/{project_id}"),
        ("PUT", "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
    ):
        assert known in routes, known
    failures = []
    for method, template in routes:
        path = fill(template)
        status, body, _ = await reader_api.request(method, path, json={})
        problem = forbidden_problem(path, status, body)
        if problem is not None:
            failures.append(f"{method} {template}: {problem}")
    assert not failures, f"{len(failures)} write route(s) open to a reader:\n" + "\n".join(failures)


async def test_reader_cannot_touch_real_objects(
    member_api: ApiClient, reader_api: ApiClient
) -> None:
    group_path = "/compute/v2.1/os-server-groups"
    status, body, _ = await member_api.post(
        group_path, json={"server_group": {"name": "g1", "policies": ["affinity"]}}
    )
    assert status == 200, body
    group = body["server_group"]["id"]
    image = await member_api.upload_image("img1")

    for method, path in (
        ("DELETE", f"{group_path}/{group}"),
        ("DELETE", f"/image/v2/images/{image}"),
        ("PATCH", f"/image/v2/images/{image}"),
        ("PUT", f"/image/v2/images/{image}/tags/t1"),
        ("POST", group_path),
    ):
        status, body, _ = await reader_api.request(method, path, json={})
        assert forbidden_problem(path, status, body) is None, (method, path, status, body)
    # Nothing changed, and the reader sees it all.
    status, body, _ = await reader_api.get(f"{group_path}/{group}")
    assert status == 200, body
    status, body, _ = await reader_api.get(f"/image/v2/images/{image}")
    assert status == 200 and body["tags"] == [], body


async def test_reader_can_read(reader_api: ApiClient) -> None:
    for path in (
        SERVERS,
        SERVERS + "/detail",
        "/compute/v2.1/flavors",
        "/compute/v2.1/flavors/detail",
        "/compute/v2.1/os-keypairs",
        "/compute/v2.1/os-server-groups",
        "/compute/v2.1/limits",
        "/image/v2/images",
        "/identity/v3/roles",
        f"/identity/v3/projects/{reader_api.project_id}",
        f"/identity/v3/users/{reader_api.user_id}",
    ):
        status, body, _ = await reader_api.get(path)
        assert status == 200, (path, body)


async def test_reader_can_log_in_and_revoke_own_token(
    api: ApiClient, reader_api: ApiClient
) -> None:
    tokens = "/identity/v3/auth/tokens"
    token, body = await login(api.session, api.base, "reader1", "pw-reader1", "class1")
    assert [r["name"] for r in body["roles"]] == ["reader"]
    status, body, _ = await reader_api.get(tokens, headers={"X-Subject-Token": token})
    assert status == 200, body
    status, body, _ = await reader_api.delete(tokens, headers={"X-Subject-Token": token})
    assert status == 204, body
    status, body, _ = await reader_api.get(SERVERS, token=token)
    assert status == 401, body
    status, _, _ = await reader_api.get(SERVERS)  # the other token is untouched
    assert status == 200


async def test_unauthenticated_write_is_401_not_public(api: ApiClient) -> None:
    for method, path in (("POST", "/image"), ("DELETE", "/compute/v2.1"), ("PUT", "/identity")):
        status, body, _ = await api.request(method, path, json={}, token=False)
        assert status == 401, (method, path, body)


# ---- member and admin keep their rights ------------------------------------------------------


async def test_member_still_writes_in_its_project(member_api: ApiClient) -> None:
    status, body, _ = await member_api.post(
        "/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1"}}
    )
    assert status == 200, body
    status, body, _ = await member_api.delete("/compute/v2.1/os-keypairs/k1")
    assert status == 202, body
    image = await member_api.upload_image("mine")
    status, body, _ = await member_api.put(f"/image/v2/images/{image}/tags/lab")
    assert status == 204, body
    status, body, _ = await member_api.delete(f"/image/v2/images/{image}")
    assert status == 204, body
    # Past the role check, the handlers' own rules still apply: 404 for what is missing,
    # 403 for admin-only operations.
    status, body, _ = await member_api.delete(f"/image/v2/images/{DUMMY_ID}")
    assert status == 404, body
    status, body, _ = await member_api.delete("/compute/v2.1/flavors/1")
    assert status == 403 and "read-only" not in body["forbidden"]["message"], body
    status, body, _ = await member_api.post(
        "/identity/v3/projects", json={"project": {"name": "nope"}}
    )
    assert status == 403 and "read-only" not in body["error"]["message"], body


async def test_member_and_reader_together_can_write(api: ApiClient, member_api: ApiClient) -> None:
    both = await add_user(api, member_api.project_id, "both1", "reader", "member")
    status, body, _ = await both.post("/compute/v2.1/os-keypairs", json={"keypair": {"name": "k"}})
    assert status == 200, body


async def test_admin_keeps_everything(api: ApiClient) -> None:
    status, body, _ = await api.post(
        "/compute/v2.1/flavors",
        json={"flavor": {"name": "x1", "ram": 64, "vcpus": 1, "disk": 1, "id": "x1"}},
    )
    assert status == 200, body
    status, body, _ = await api.delete("/compute/v2.1/flavors/x1")
    assert status == 202, body
    status, body, _ = await api.post("/identity/v3/projects", json={"project": {"name": "p9"}})
    assert status == 201, body
    status, body, _ = await api.delete(f"/image/v2/images/{DUMMY_ID}")
    assert status == 404, body  # past the role check, straight to the handler


# ---- changes reach already-issued tokens -----------------------------------------------------


async def test_role_removal_invalidates_existing_token(
    api: ApiClient, member_api: ApiClient
) -> None:
    status, _, _ = await member_api.get(SERVERS)
    assert status == 200
    rid = await _role_id(api, "member")
    grant = f"/identity/v3/projects/{member_api.project_id}/users/{member_api.user_id}/roles/{rid}"
    status, body, _ = await api.delete(grant)
    assert status == 204, body
    await wait_status(member_api, SERVERS, 401)
    status, body, _ = await member_api.get(SERVERS)
    assert body["unauthorized"]["code"] == 401, body


async def test_demotion_to_reader_reaches_existing_token(
    api: ApiClient, member_api: ApiClient
) -> None:
    rid = await _role_id(api, "reader")
    grant = f"/identity/v3/projects/{member_api.project_id}/users/{member_api.user_id}/roles"
    status, body, _ = await api.put(f"{grant}/{rid}")
    assert status == 204, body
    status, body, _ = await member_api.post(
        "/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1"}}
    )
    assert status == 200, body
    status, body, _ = await api.delete(f"{grant}/{await _role_id(api, 'member')}")
    assert status == 204, body
    last: dict[str, Any] = {}

    async def refused() -> bool:
        last["status"], last["body"], _ = await member_api.post(
            "/compute/v2.1/os-keypairs", json={"keypair": {"name": "k2"}}
        )
        return last["status"] == 403

    await wait_for(refused, 5, 0.1, lambda: f"the revoked role to take effect: {last}")
    status, body = last["status"], last["body"]
    assert forbidden_problem(SERVERS, status, body) is None, (status, body)
    status, body, _ = await member_api.get(SERVERS)
    assert status == 200, body
    status, body, _ = await member_api.get(
        "/identity/v3/auth/tokens", headers={"X-Subject-Token": member_api.token}
    )
    assert [r["name"] for r in body["token"]["roles"]] == ["reader"], body


async def test_project_disable_invalidates_existing_token(
    api: ApiClient, member_api: ApiClient
) -> None:
    status, body, _ = await api.patch(
        f"/identity/v3/projects/{member_api.project_id}", json={"project": {"enabled": False}}
    )
    assert status == 200 and body["project"]["enabled"] is False, body
    await wait_status(member_api, SERVERS, 401)
    status, body, _ = await member_api.get("/identity/v3/roles")
    assert status == 401 and body["error"]["title"] == "Unauthorized", body


async def test_user_disable_invalidates_existing_token(
    api: ApiClient, member_api: ApiClient
) -> None:
    status, body, _ = await api.patch(
        f"/identity/v3/users/{member_api.user_id}", json={"user": {"enabled": False}}
    )
    assert status == 200 and body["user"]["enabled"] is False, body
    await wait_status(member_api, "/image/v2/images", 401)


async def _remove_role(store: Store, user_id: str, project_id: str) -> None:
    role = await identity_db.role_by_name(store, "member")
    assert role is not None
    await identity_db.revoke(store, user_id, project_id, role["id"])


async def _disable_user(store: Store, user_id: str, project_id: str) -> None:
    await identity_db.update_user(store, user_id, {"enabled": 0})


async def _disable_project(store: Store, user_id: str, project_id: str) -> None:
    await identity_db.update_project(store, project_id, {"enabled": 0})


@pytest.mark.parametrize(
    "change",
    [_remove_role, _disable_user, _disable_project],
    ids=["role-removed", "user-disabled", "project-disabled"],
)
async def test_changes_behind_the_apis_back_expire_from_the_cache(
    controller: Controller, member_api: ApiClient, change: Any
) -> None:
    """A change made without the identity API (no cache drop) still lands within the TTL."""
    status, _, _ = await member_api.get(SERVERS)
    assert status == 200  # validated and cached
    assert controller.store is not None
    await change(controller.store, member_api.user_id, member_api.project_id)
    took = await wait_status(member_api, SERVERS, 401)
    assert took <= TOKEN_CACHE_TTL + 1.0, took


# ---- the real openstack CLI ------------------------------------------------------------------


@pytest.mark.first_backend_only
async def test_openstack_cli_reader(controller: Controller, reader_api: ApiClient) -> None:
    who = {"user": "reader1", "password": "pw-reader1", "project": "class1"}
    rc, out, err = await run_openstack(controller, "flavor", "list", "-f", "json", **who)
    assert rc == 0, err
    assert "m1.tiny" in out
    rc, _, err = await run_openstack(controller, "keypair", "create", "k-cli", **who)
    assert rc != 0 and "403" in err, err
    rc, _, err = await run_openstack(controller, "image", "delete", DUMMY_ID, **who)
    assert rc != 0, err
