"""Keystone v3 subset: tokens, catalog, role enforcement."""

from __future__ import annotations

from tests.conftest import ApiClient


async def test_discovery_needs_no_token(api: ApiClient) -> None:
    status, body, _ = await api.get("/identity/v3", token=False)
    assert status == 200
    assert body["version"]["id"].startswith("v3")
    assert body["version"]["links"][0]["rel"] == "self"
    status, body, _ = await api.get("/compute/v2.1", token=False)
    assert status == 200
    assert {"id", "status", "links", "version", "min_version"} <= set(body["version"])


async def test_token_validate_and_revoke(api: ApiClient) -> None:
    status, body, resp = await api.get(
        "/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token}
    )
    assert status == 200
    assert resp.headers["X-Subject-Token"] == api.token
    types = {entry["type"] for entry in body["token"]["catalog"]}
    assert {"identity", "compute", "image"} <= types
    assert body["token"]["expires_at"].endswith("Z")
    status, _, _ = await api.delete(
        "/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token}
    )
    assert status == 204
    status, body, _ = await api.get("/compute/v2.1/flavors")
    assert status == 401


async def test_no_token_is_401_with_nova_body(api: ApiClient) -> None:
    status, body, _ = await api.get("/compute/v2.1/servers", token=False)
    assert status == 401
    assert body["unauthorized"]["code"] == 401


async def test_wrong_password_is_401(api: ApiClient) -> None:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"name": "Default"}, "password": "nope"}
                },
            }
        }
    }
    status, err, _ = await api.post("/identity/v3/auth/tokens", json=body, token=False)
    assert status == 401
    assert err["error"]["code"] == 401


async def test_member_cannot_use_admin_identity_api(member_api: ApiClient) -> None:
    status, body, _ = await member_api.get("/identity/v3/users")
    assert status == 403
    assert body["error"]["code"] == 403
