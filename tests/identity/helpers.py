"""Helpers for the Keystone tests: users with roles on projects, and the token method."""

from __future__ import annotations

from typing import Any

from tests.conftest import ApiClient, login

TOKENS = "/identity/v3/auth/tokens"


async def role_id(api: ApiClient, name: str) -> str:
    status, body, _ = await api.get(f"/identity/v3/roles?name={name}")
    assert status == 200 and len(body["roles"]) == 1, body
    return body["roles"][0]["id"]


async def new_project(api: ApiClient, name: str, **fields: Any) -> dict[str, Any]:
    """Create a project as admin; its view."""
    status, body, _ = await api.post(
        "/identity/v3/projects", json={"project": {"name": name, **fields}}
    )
    assert status == 201, body
    return body["project"]


async def grant(api: ApiClient, project_id: str, user_id: str, role: str) -> None:
    rid = await role_id(api, role)
    status, body, _ = await api.put(
        f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{rid}"
    )
    assert status == 204, body


async def new_user(api: ApiClient, name: str, project: dict[str, Any], role: str) -> ApiClient:
    """A user holding `role` on `project` (their default project), logged in there."""
    status, body, _ = await api.post(
        "/identity/v3/users",
        json={
            "user": {"name": name, "password": "pw-" + name, "default_project_id": project["id"]}
        },
    )
    assert status == 201, body
    uid = body["user"]["id"]
    await grant(api, project["id"], uid, role)
    token, _ = await login(api.session, api.base, name, "pw-" + name, project["name"])
    return ApiClient(api.base, api.session, token, project["id"], uid)


async def token_auth(
    api: ApiClient, token: str, project: dict[str, Any] | None = None
) -> tuple[int, Any, Any]:
    """POST /v3/auth/tokens with the token method, scoped to `project` (a scope's project
    object: {"id": …} or {"name": …, "domain": …}) or unscoped."""
    auth: dict[str, Any] = {"identity": {"methods": ["token"], "token": {"id": token}}}
    if project is not None:
        auth["scope"] = {"project": project}
    return await api.post(TOKENS, json={"auth": auth}, token=False)


async def whoami(api: ApiClient, token: str) -> dict[str, Any]:
    """The token document GET /v3/auth/tokens shows for `token`."""
    status, body, _ = await api.get(TOKENS, headers={"X-Subject-Token": token})
    assert status == 200, body
    return body["token"]
