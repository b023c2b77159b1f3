"""Keystone's project tags: on the project views, the tag sub-resources, the list filters and
Keystone's validation."""

from __future__ import annotations

from typing import Any

from tests.conftest import ApiClient
from tests.identity.helpers import new_project, new_user

PROJECTS = "/identity/v3/projects"


def _assert_400(status: int, body: Any, *fragments: str) -> None:
    assert status == 400, body
    error = body["error"]
    assert error["code"] == 400 and error["title"] == "Bad Request", body
    for fragment in fragments:
        assert fragment in error["message"], body


async def test_every_project_view_shows_tags(api: ApiClient) -> None:
    status, body, _ = await api.get(PROJECTS)
    assert status == 200
    assert body["projects"] and all(p["tags"] == [] for p in body["projects"])
    status, body, _ = await api.get(f"{PROJECTS}/{api.project_id}")
    assert body["project"]["tags"] == []


async def test_create_show_and_patch_tags(api: ApiClient) -> None:
    created = await new_project(api, "p1", tags=["x", "y", "x"])  # a repeat counts once
    assert created["tags"] == ["x", "y"]
    pid = created["id"]
    status, body, _ = await api.get(f"{PROJECTS}/{pid}")
    assert status == 200 and body["project"]["tags"] == ["x", "y"]

    status, body, _ = await api.patch(f"{PROJECTS}/{pid}", json={"project": {"tags": ["z"]}})
    assert status == 200 and body["project"]["tags"] == ["z"]
    # A change without `tags` keeps them.
    status, body, _ = await api.patch(
        f"{PROJECTS}/{pid}", json={"project": {"description": "now described"}}
    )
    assert status == 200 and body["project"]["tags"] == ["z"]
    assert body["project"]["description"] == "now described"
    status, body, _ = await api.patch(f"{PROJECTS}/{pid}", json={"project": {"tags": []}})
    assert status == 200 and body["project"]["tags"] == []


async def test_tag_sub_resources(api: ApiClient) -> None:
    pid = (await new_project(api, "p1", tags=["a"]))["id"]
    tags = f"{PROJECTS}/{pid}/tags"

    status, body, _ = await api.get(tags)
    assert status == 200 and body["tags"] == ["a"], body
    assert body["links"]["self"].endswith(f"/identity/v3/projects/{pid}/tags")

    status, body, _ = await api.put(tags, json={"tags": ["b", "c", "b"]})
    assert status == 200 and body["tags"] == ["b", "c"], body
    status, body, _ = await api.get(f"{PROJECTS}/{pid}")
    assert body["project"]["tags"] == ["b", "c"]

    for method in ("GET", "HEAD"):
        status, _, _ = await api.request(method, f"{tags}/b")
        assert status == 204
        status, body, _ = await api.request(method, f"{tags}/a")
        assert status == 404
    status, body, _ = await api.get(f"{tags}/a")
    assert body["error"]["code"] == 404 and body["error"]["title"] == "Not Found", body

    status, body, resp = await api.put(f"{tags}/new tag")
    assert status == 201, body
    assert resp.headers["Location"].endswith(f"/identity/v3/projects/{pid}/tags/new%20tag")
    status, _, _ = await api.put(f"{tags}/new tag")  # already there: still 201, listed once
    assert status == 201
    status, body, _ = await api.get(tags)
    assert body["tags"] == ["b", "c", "new tag"]

    status, _, _ = await api.delete(f"{tags}/b")
    assert status == 204
    status, body, _ = await api.delete(f"{tags}/b")
    assert status == 404 and body["error"]["code"] == 404, body
    status, body, _ = await api.get(tags)
    assert body["tags"] == ["c", "new tag"]

    status, _, _ = await api.delete(tags)
    assert status == 204
    status, body, _ = await api.get(tags)
    assert body["tags"] == []
    status, body, _ = await api.get(f"{PROJECTS}/{pid}")
    assert body["project"]["tags"] == []


async def test_unknown_project_is_404(api: ApiClient) -> None:
    tags = f"{PROJECTS}/no-such-project/tags"
    for method, path, body in (
        ("GET", tags, None),
        ("PUT", tags, {"tags": ["a"]}),
        ("DELETE", tags, None),
        ("GET", f"{tags}/a", None),
        ("PUT", f"{tags}/a", None),
        ("DELETE", f"{tags}/a", None),
    ):
        status, err, _ = await api.request(method, path, json=body)
        assert status == 404 and err["error"]["code"] == 404, (method, path, err)


async def test_filters(api: ApiClient) -> None:
    for name, tags in (("a", ["x", "y"]), ("b", ["x"]), ("c", ["y", "z"]), ("d", [])):
        await new_project(api, name, tags=tags)

    async def names(query: str) -> set[str]:
        status, body, _ = await api.get(f"{PROJECTS}?{query}")
        assert status == 200, body
        return {p["name"] for p in body["projects"]}

    everything = await names("")
    others = everything - {"a", "b", "c", "d"}  # admin, service
    assert others and everything >= {"a", "b", "c", "d"}
    assert await names("tags=x") == {"a", "b"}
    assert await names("tags=x,y") == {"a"}
    assert await names("tags-any=x,z") == {"a", "b", "c"}
    assert await names("not-tags=x,y") == everything - {"a"}
    assert await names("not-tags-any=x,z") == {"d"} | others
    assert await names("tags=y&not-tags-any=z") == {"a"}
    assert await names("tags-any=x,y&not-tags=x,y") == {"b", "c"}
    assert await names("tags=x&name=b") == {"b"}
    assert await names("tags=nowhere") == set()


async def test_member_reads_own_tags_and_writes_none(api: ApiClient) -> None:
    class1 = await new_project(api, "class1", tags=["course"])
    other = await new_project(api, "other", tags=["course"])
    student = await new_user(api, "student1", class1, "member")

    status, body, _ = await student.get(f"{PROJECTS}/{class1['id']}/tags")
    assert status == 200 and body["tags"] == ["course"], body
    status, _, _ = await student.get(f"{PROJECTS}/{class1['id']}/tags/course")
    assert status == 204
    status, body, _ = await student.get(f"{PROJECTS}?tags=course")
    assert status == 200 and [p["name"] for p in body["projects"]] == ["class1"]
    status, body, _ = await student.get(f"{PROJECTS}/{other['id']}/tags")
    assert status == 403 and body["error"]["code"] == 403, body
    status, body, _ = await student.get(f"{PROJECTS}/{other['id']}/tags/course")
    assert status == 403, body

    tags = f"{PROJECTS}/{class1['id']}/tags"
    for method, path, payload in (
        ("PUT", tags, {"tags": ["mine"]}),
        ("DELETE", tags, None),
        ("PUT", f"{tags}/mine", None),
        ("DELETE", f"{tags}/course", None),
        ("PATCH", f"{PROJECTS}/{class1['id']}", {"project": {"tags": ["mine"]}}),
    ):
        status, body, _ = await student.request(method, path, json=payload)
        assert status == 403 and body["error"]["code"] == 403, (method, path, body)
    status, body, _ = await api.get(tags)
    assert body["tags"] == ["course"]


async def test_validation(api: ApiClient) -> None:
    pid = (await new_project(api, "p1"))["id"]
    tags = f"{PROJECTS}/{pid}/tags"
    bad_lists: list[tuple[Any, str]] = [
        (["ok", "a/b"], "'tags/1'"),
        (["a,b"], "'tags/0'"),
        ([""], "'tags/0'"),
        (["x" * 256], "'tags/0'"),
        ([7], "'tags/0'"),
        ("x", "'tags'"),
        (None, "'tags'"),
        ([f"t{i}" for i in range(81)], "at most 80"),
    ]
    for value, fragment in bad_lists:
        status, body, _ = await api.post(
            PROJECTS, json={"project": {"name": "invalid", "tags": value}}
        )
        _assert_400(status, body, fragment)
        status, body, _ = await api.patch(f"{PROJECTS}/{pid}", json={"project": {"tags": value}})
        _assert_400(status, body, fragment)
        status, body, _ = await api.put(tags, json={"tags": value})
        _assert_400(status, body, fragment)
    status, body, _ = await api.get(f"{PROJECTS}?name=invalid")
    assert body["projects"] == []
    status, body, _ = await api.put(tags, json={"not-tags": []})
    _assert_400(status, body, "tags")

    # The limits themselves are fine: 255 characters, 80 tags (repeats not counted).
    eighty = [f"t{i}" for i in range(80)]
    status, body, _ = await api.put(tags, json={"tags": [*eighty, "t0", "t1"]})
    assert status == 200 and body["tags"] == eighty, body
    status, body, _ = await api.put(f"{tags}/t5")  # already there: no 81st tag
    assert status == 201, body
    status, body, _ = await api.put(f"{tags}/t80")
    _assert_400(status, body, "at most 80")
    status, body, _ = await api.put(tags, json={"tags": ["x" * 255]})
    assert status == 200 and body["tags"] == ["x" * 255]

    # In the path: a ',' or an encoded '/' (a bare '/' is another path: 404), or too long.
    for bad in ("a,b", "a%2Fb", "x" * 256):
        status, body, _ = await api.put(f"{tags}/{bad}")
        _assert_400(status, body, "Invalid input for field 'tag'")
    status, body, _ = await api.get(tags)
    assert body["tags"] == ["x" * 255]
