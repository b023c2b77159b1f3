"""The token method of POST /v3/auth/tokens: rescoping a token to another project."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from mininova.controller import Controller
from mininova.timeutil import parse_iso
from tests.conftest import ApiClient, login
from tests.identity.helpers import TOKENS, grant, new_project, new_user, token_auth, whoami
from tests.kit.clock import FakeClock

DEFAULT = {"name": "Default"}


@pytest.fixture
async def student(api: ApiClient) -> ApiClient:
    """student1: member of class1 (logged in there) and of lab2, nothing on exam3."""
    class1 = await new_project(api, "class1")
    lab2 = await new_project(api, "lab2")
    await new_project(api, "exam3")
    client = await new_user(api, "student1", class1, "member")
    await grant(api, lab2["id"], client.user_id, "member")
    return client


async def _project_id(api: ApiClient, name: str) -> str:
    status, body, _ = await api.get(f"/identity/v3/projects?name={name}")
    assert status == 200 and len(body["projects"]) == 1, body
    return body["projects"][0]["id"]


def _assert_401(status: int, body: Any) -> None:
    assert status == 401, body
    assert body["error"]["code"] == 401 and body["error"]["title"] == "Unauthorized", body


async def test_rescope_to_another_project_of_the_user(api: ApiClient, student: ApiClient) -> None:
    lab2 = await _project_id(api, "lab2")
    original = await whoami(api, student.token)

    status, body, resp = await token_auth(api, student.token, {"id": lab2})
    assert status == 201, body
    new = resp.headers["X-Subject-Token"]
    assert new and new != student.token
    token = body["token"]
    assert token["project"] == {"id": lab2, "name": "lab2", "domain": original["project"]["domain"]}
    assert token["user"]["id"] == student.user_id and token["user"]["name"] == "student1"
    assert [r["name"] for r in token["roles"]] == ["member"]
    assert token["methods"] == ["token", "password"]
    # Keystone's audit chain: the new token's own id, then the original's.
    assert len(token["audit_ids"]) == 2 and token["audit_ids"][1] == original["audit_ids"][0]
    assert token["audit_ids"][0] != original["audit_ids"][0]
    assert token["expires_at"] == original["expires_at"]
    assert {e["type"] for e in token["catalog"]} >= {"identity", "compute", "image"}

    # The new token works in lab2 and says so when validated; the original still works too.
    assert (await whoami(api, new))["project"]["id"] == lab2
    status, servers, _ = await api.get("/compute/v2.1/servers", token=new)
    assert status == 200 and servers == {"servers": []}
    status, project, _ = await api.get(f"/identity/v3/projects/{lab2}", token=new)
    assert status == 200 and project["project"]["name"] == "lab2"
    assert (await whoami(api, student.token))["project"]["id"] == student.project_id

    # Rescoping a rescoped token keeps the chain's first audit id and the expiry.
    status, again, _ = await token_auth(api, new, {"name": "class1", "domain": DEFAULT})
    assert status == 201, again
    assert again["token"]["project"]["id"] == student.project_id
    assert again["token"]["methods"] == ["token", "password"]
    assert again["token"]["audit_ids"][1] == original["audit_ids"][0]
    assert again["token"]["expires_at"] == original["expires_at"]


async def test_no_scope_keeps_the_tokens_project(api: ApiClient, student: ApiClient) -> None:
    status, body, resp = await token_auth(api, student.token)
    assert status == 201, body
    assert body["token"]["project"]["id"] == student.project_id
    assert (await whoami(api, resp.headers["X-Subject-Token"]))["project"]["name"] == "class1"


async def test_refused_where_the_user_holds_no_role(api: ApiClient, student: ApiClient) -> None:
    exam3 = await _project_id(api, "exam3")
    status, body, resp = await token_auth(api, student.token, {"id": exam3})
    _assert_401(status, body)
    assert "X-Subject-Token" not in resp.headers
    assert body["error"]["message"] == f"User {student.user_id} has no access to project {exam3}"
    # Not by name either, nor to the admin project, nor to one that does not exist.
    status, body, _ = await token_auth(api, student.token, {"name": "exam3", "domain": DEFAULT})
    _assert_401(status, body)
    status, body, _ = await token_auth(api, student.token, {"id": api.project_id})
    _assert_401(status, body)
    status, body, _ = await token_auth(api, student.token, {"id": "no-such-project"})
    _assert_401(status, body)


async def test_disabled_target_project_is_refused(api: ApiClient, student: ApiClient) -> None:
    lab2 = await _project_id(api, "lab2")
    status, _, _ = await api.patch(
        f"/identity/v3/projects/{lab2}", json={"project": {"enabled": False}}
    )
    assert status == 200
    status, body, _ = await token_auth(api, student.token, {"id": lab2})
    _assert_401(status, body)


async def test_revoked_original_is_refused(api: ApiClient, student: ApiClient) -> None:
    lab2 = await _project_id(api, "lab2")
    status, _, _ = await student.delete(TOKENS, headers={"X-Subject-Token": student.token})
    assert status == 204
    status, body, _ = await token_auth(api, student.token, {"id": lab2})
    _assert_401(status, body)


async def test_invalid_tokens_are_refused(api: ApiClient, student: ApiClient) -> None:
    status, body, _ = await token_auth(api, "mn-not-a-token")
    _assert_401(status, body)
    status, body, _ = await token_auth(api, "")
    _assert_401(status, body)
    # A user disabled since: their token no longer mints tokens.
    status, _, _ = await api.patch(
        f"/identity/v3/users/{student.user_id}", json={"user": {"enabled": False}}
    )
    assert status == 200
    status, body, _ = await token_auth(api, student.token)
    _assert_401(status, body)


async def test_malformed_token_method_is_400(api: ApiClient) -> None:
    auth = {"identity": {"methods": ["token"], "token": {}}}
    status, body, _ = await api.post(TOKENS, json={"auth": auth}, token=False)
    assert status == 400 and body["error"]["code"] == 400, body
    assert "Expecting to find id in token" in body["error"]["message"]
    auth = {"identity": {"methods": ["totp"], "totp": {}}}
    status, body, _ = await api.post(TOKENS, json={"auth": auth}, token=False)
    _assert_401(status, body)


async def test_rescoping_never_extends_the_expiry(
    fake_clock: FakeClock, api: ApiClient, student: ApiClient, controller: Controller
) -> None:
    lab2 = await _project_id(api, "lab2")
    assert controller.services is not None
    ttl = controller.services.identity.token_ttl
    # A fresh login at the fake clock's time, half an hour before rescoping.
    token, original = await login(api.session, api.base, "student1", "pw-student1", "class1")
    expires = parse_iso(original["expires_at"])
    fake_clock.advance(ttl / 2)

    status, body, resp = await token_auth(api, token, {"id": lab2})
    assert status == 201, body
    new = resp.headers["X-Subject-Token"]
    assert parse_iso(body["token"]["expires_at"]) == expires
    assert parse_iso(body["token"]["issued_at"]) == fake_clock.now()  # issued now, not extended
    assert parse_iso(body["token"]["expires_at"]) < fake_clock.now() + timedelta(seconds=ttl)

    # Past the original's expiry both are dead, and neither can mint another token.
    fake_clock.advance(ttl / 2 + 1)
    for dead in (token, new):
        status, body, _ = await api.get("/compute/v2.1/servers", token=dead)
        assert status == 401, body
        status, body, _ = await token_auth(api, dead, {"id": lab2})
        _assert_401(status, body)
