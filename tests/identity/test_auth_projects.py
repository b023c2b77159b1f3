"""GET /v3/auth/projects: the projects a token's user may scope to."""

from __future__ import annotations

from tests.conftest import ApiClient
from tests.identity.helpers import grant, new_project, new_user, token_auth

AUTH_PROJECTS = "/identity/v3/auth/projects"


async def test_member_sees_the_projects_where_they_hold_a_role(api: ApiClient) -> None:
    class1 = await new_project(api, "class1", tags=["course"])
    lab2 = await new_project(api, "lab2")
    await new_project(api, "exam3")  # no role there
    student = await new_user(api, "student1", class1, "member")
    await grant(api, lab2["id"], student.user_id, "reader")
    await grant(api, lab2["id"], student.user_id, "member")  # two roles: listed once

    status, body, _ = await student.get(AUTH_PROJECTS)
    assert status == 200, body
    assert [p["name"] for p in body["projects"]] == ["class1", "lab2"]
    first = body["projects"][0]
    assert first["id"] == class1["id"] and first["domain_id"] == "default"
    assert first["enabled"] is True and first["tags"] == ["course"]
    assert first["links"]["self"].endswith(f"/identity/v3/projects/{class1['id']}")
    assert body["links"]["self"].endswith("/identity/v3/auth/projects")
    assert body["links"]["previous"] is None and body["links"]["next"] is None

    # A token scoped to lab2 lists the same projects (they are the user's, not the token's).
    status, scoped, resp = await token_auth(api, student.token, {"id": lab2["id"]})
    assert status == 201, scoped
    status, again, _ = await api.get(AUTH_PROJECTS, token=resp.headers["X-Subject-Token"])
    assert status == 200 and again["projects"] == body["projects"]
    # HEAD answers too.
    status, _, _ = await student.request("HEAD", AUTH_PROJECTS)
    assert status == 200


async def test_reader_may_list_too(api: ApiClient) -> None:
    lab = await new_project(api, "lab")
    reader = await new_user(api, "reader1", lab, "reader")
    status, body, _ = await reader.get(AUTH_PROJECTS)
    assert status == 200, body
    assert [p["name"] for p in body["projects"]] == ["lab"]


async def test_admin_sees_only_projects_with_a_role_not_all(api: ApiClient) -> None:
    await new_project(api, "class1")  # admin holds no role there
    status, assignments, _ = await api.get(f"/identity/v3/role_assignments?user.id={api.user_id}")
    assert status == 200
    own = {a["scope"]["project"]["id"] for a in assignments["role_assignments"]}
    assert api.project_id in own

    status, body, _ = await api.get(AUTH_PROJECTS)
    assert status == 200, body
    assert {p["id"] for p in body["projects"]} == own
    assert "class1" not in {p["name"] for p in body["projects"]}
    status, everything, _ = await api.get("/identity/v3/projects")
    assert "class1" in {p["name"] for p in everything["projects"]}


async def test_needs_a_token(api: ApiClient) -> None:
    status, body, _ = await api.get(AUTH_PROJECTS, token=False)
    assert status == 401 and body["error"]["code"] == 401, body
    status, body, _ = await api.get(AUTH_PROJECTS, token="mn-bogus")
    assert status == 401, body
