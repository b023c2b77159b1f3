"""Keypairs: generate/import, fingerprints, per-microversion views, user scoping, OSC."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mininova.controller import Controller
from tests.api.cli import run_openstack
from tests.conftest import ApiClient

K = "/compute/v2.1/os-keypairs"

SHOW_21 = {
    "public_key",
    "name",
    "fingerprint",
    "user_id",
    "deleted",
    "created_at",
    "updated_at",
    "deleted_at",
    "id",
}


def new_public_key(comment: str = "user@host") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    text = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{text} {comment}\n"


def md5_fingerprint(public_key: str) -> str:
    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


async def test_generate_at_2_1(api: ApiClient) -> None:
    status, body, _ = await api.post(K, json={"keypair": {"name": "gen1"}})
    assert status == 200, body
    kp = body["keypair"]
    assert set(kp) == {"name", "public_key", "fingerprint", "user_id", "private_key"}
    assert kp["private_key"].startswith("-----BEGIN")
    assert kp["public_key"].startswith("ssh-rsa ")
    assert kp["fingerprint"] == md5_fingerprint(kp["public_key"])
    assert kp["user_id"] == api.user_id
    # the generated pair really matches
    private = serialization.load_pem_private_key(kp["private_key"].encode(), None)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    assert kp["public_key"].split()[1] == public.split()[1]

    status, body, _ = await api.get(K + "/gen1")
    assert status == 200
    assert set(body["keypair"]) == SHOW_21
    assert isinstance(body["keypair"]["id"], int) and body["keypair"]["deleted"] is False
    status, body, _ = await api.get(K)
    assert status == 200
    assert body == {
        "keypairs": [
            {
                "keypair": {
                    "name": "gen1",
                    "public_key": kp["public_key"],
                    "fingerprint": kp["fingerprint"],
                }
            }
        ]
    }
    status, body, _ = await api.delete(K + "/gen1")
    assert status == 202 and body is None
    status, _, _ = await api.get(K + "/gen1")
    assert status == 404


async def test_import_at_2_2_and_2_10(api: ApiClient) -> None:
    pub = new_public_key()
    status, body, _ = await api.post(
        K, json={"keypair": {"name": "imp1", "public_key": pub}}, version="2.2"
    )
    assert status == 201, body
    kp = body["keypair"]
    assert set(kp) == {"name", "public_key", "fingerprint", "user_id", "type"}
    assert kp["type"] == "ssh" and kp["public_key"] == pub
    assert kp["fingerprint"] == md5_fingerprint(pub)
    _, body, _ = await api.get(K + "/imp1", version="2.2")
    assert set(body["keypair"]) == SHOW_21 | {"type"}
    _, body, _ = await api.get(K, version="2.10")
    assert set(body["keypairs"][0]["keypair"]) == {"name", "public_key", "fingerprint", "type"}
    status, _, _ = await api.post(
        K, json={"keypair": {"name": "imp1", "public_key": pub}}, version="2.10"
    )
    assert status == 409
    status, body, _ = await api.delete(K + "/imp1", version="2.10")
    assert status == 204 and body is None


async def test_2_92_requires_public_key(api: ApiClient) -> None:
    status, err, _ = await api.post(K, json={"keypair": {"name": "n1"}}, version="2.92")
    assert status == 400 and "public_key" in err["badRequest"]["message"]
    status, _, _ = await api.post(
        K, json={"keypair": {"name": "n1", "public_key": None}}, version="2.92"
    )
    assert status == 400
    status, body, _ = await api.post(
        K, json={"keypair": {"name": "me@host.key", "public_key": new_public_key()}}, version="2.92"
    )
    assert status == 201, body
    assert set(body["keypair"]) == {"name", "public_key", "fingerprint", "user_id", "type"}
    # '.' and '@' only from 2.92
    status, _, _ = await api.post(
        K, json={"keypair": {"name": "me@host", "public_key": new_public_key()}}, version="2.10"
    )
    assert status == 400


async def test_invalid_input(api: ApiClient) -> None:
    for body in (
        {"keypair": {"name": "k", "public_key": "ssh-rsa notbase64"}},
        {"keypair": {"name": "k", "public_key": "garbage"}},
        {"keypair": {"name": "k", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"}},
        {"keypair": {"name": "", "public_key": new_public_key()}},
        {"keypair": {"name": "bad/name"}},
        {"keypair": {"name": " lead"}},
        {"keypair": {"name": "x" * 256}},
        {"keypair": {"name": "k", "type": "ssh"}},  # type only from 2.2
        {"keypair": {"name": "k", "user_id": "u"}},  # user_id only from 2.10
        {"keypair": {}},
        {},
    ):
        status, err, _ = await api.post(K, json=body)
        assert status == 400, (body, err)
        assert err["badRequest"]["code"] == 400
    status, _, _ = await api.post(K, json={"keypair": {"name": "k", "type": "rsa"}}, version="2.2")
    assert status == 400


async def test_x509_import(api: ApiClient) -> None:
    status, body, _ = await api.post(
        K, json={"keypair": {"name": "cert", "type": "x509"}}, version="2.2"
    )
    assert status == 201, body
    assert body["keypair"]["type"] == "x509"
    assert body["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(body["keypair"]["fingerprint"].split(":")) == 20


async def test_keypairs_belong_to_user(api: ApiClient, member_api: ApiClient) -> None:
    pub = new_public_key()
    status, _, _ = await member_api.post(K, json={"keypair": {"name": "mine", "public_key": pub}})
    assert status == 200
    status, _, _ = await api.get(K + "/mine")
    assert status == 404
    _, body, _ = await api.get(K)
    assert body["keypairs"] == []
    # admin may address another user from 2.10
    status, body, _ = await api.get(K + f"/mine?user_id={member_api.user_id}", version="2.10")
    assert status == 200 and body["keypair"]["user_id"] == member_api.user_id
    _, body, _ = await api.get(K + f"?user_id={member_api.user_id}", version="2.10")
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["mine"]
    status, body, _ = await api.post(
        K,
        json={
            "keypair": {
                "name": "given",
                "public_key": new_public_key(),
                "user_id": member_api.user_id,
            }
        },
        version="2.10",
    )
    assert status == 201 and body["keypair"]["user_id"] == member_api.user_id
    _, body, _ = await member_api.get(K)
    assert sorted(k["keypair"]["name"] for k in body["keypairs"]) == ["given", "mine"]
    # a member may not
    status, _, _ = await member_api.get(K + f"?user_id={api.user_id}", version="2.10")
    assert status == 403
    status, _, _ = await member_api.post(
        K,
        json={"keypair": {"name": "x", "public_key": pub, "user_id": api.user_id}},
        version="2.10",
    )
    assert status == 403
    status, _, _ = await api.delete(K + f"/mine?user_id={member_api.user_id}", version="2.10")
    assert status == 204


async def test_pagination_from_2_35(api: ApiClient) -> None:
    for name in ("a", "b", "c"):
        status, _, _ = await api.post(
            K, json={"keypair": {"name": name, "public_key": new_public_key()}}
        )
        assert status == 200
    _, body, _ = await api.get(K + "?limit=2", version="2.35")
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["a", "b"]
    assert "marker=b" in body["keypairs_links"][0]["href"]
    _, body, _ = await api.get(K + "?limit=2&marker=b", version="2.35")
    assert [k["keypair"]["name"] for k in body["keypairs"]] == ["c"]
    assert "keypairs_links" not in body
    status, _, _ = await api.get(K + "?marker=zz", version="2.35")
    assert status == 400
    # ignored below 2.35
    _, body, _ = await api.get(K + "?limit=1", version="2.34")
    assert len(body["keypairs"]) == 3


async def test_keypair_quota(api: ApiClient) -> None:
    status, _, _ = await api.put(
        f"/compute/v2.1/os-quota-sets/{api.project_id}", json={"quota_set": {"key_pairs": 1}}
    )
    assert status == 200
    status, _, _ = await api.post(
        K, json={"keypair": {"name": "q1", "public_key": new_public_key()}}
    )
    assert status == 200
    status, err, _ = await api.post(
        K, json={"keypair": {"name": "q2", "public_key": new_public_key()}}
    )
    assert status == 403 and "key pairs" in err["forbidden"]["message"]


async def test_parallel_creates_respect_keypair_quota(api: ApiClient) -> None:
    """The quota check and the insert are one transaction under the user's quota lock:
    10 creates at once against a quota of 3 make exactly 3 keypairs."""
    status, _, _ = await api.put(
        f"/compute/v2.1/os-quota-sets/{api.project_id}", json={"quota_set": {"key_pairs": 3}}
    )
    assert status == 200
    results = await asyncio.gather(
        *(
            api.post(K, json={"keypair": {"name": f"p{i}", "public_key": new_public_key()}})
            for i in range(10)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 3 + [403] * 7, results
    for status, body, _ in results:
        if status == 403:
            assert "key pairs" in body["forbidden"]["message"]
    _, body, _ = await api.get(K)
    assert len(body["keypairs"]) == 3


@pytest.mark.first_backend_only
async def test_openstack_cli_keypairs(
    controller: Controller, api: ApiClient, tmp_path: Path
) -> None:
    rc, out, err = await run_openstack(controller, "keypair", "create", "k1")
    assert rc == 0, err
    assert "PRIVATE KEY" in out
    pubfile = tmp_path / "k2.pub"
    pub = new_public_key("root@vm")
    pubfile.write_text(pub)
    rc, out, err = await run_openstack(
        controller, "keypair", "create", "--public-key", str(pubfile), "k2", "-f", "json"
    )
    assert rc == 0, err
    created = json.loads(out)
    assert created["name"] == "k2" and created["fingerprint"] == md5_fingerprint(pub)
    rc, out, err = await run_openstack(controller, "keypair", "list", "-f", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert sorted(r["Name"] for r in rows) == ["k1", "k2"]
    assert {r["Type"] for r in rows} == {"ssh"}
    rc, out, err = await run_openstack(controller, "keypair", "show", "k1", "-f", "json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["name"] == "k1" and shown["user_id"] == api.user_id
    rc, out, err = await run_openstack(controller, "keypair", "delete", "k1")
    assert rc == 0, err
    status, _, _ = await api.get(K + "/k1")
    assert status == 404
    status, _, _ = await api.get(K + "/k2")
    assert status == 200
