"""Compute API: keypairs (per user), with Nova's microversion differences.

Schemas in `schemas/keypairs.py`, views in `views/keypairs.py`, queries in
`mininova.store.keypairs`.

2.2 adds `type` (and 201/204 status codes), 2.10 the admin `user_id` parameter, 2.35
`limit`/`marker` on the list, 2.92 makes `public_key` mandatory and allows `.`/`@` in names.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mininova import quota
from mininova.api.compute.schemas import keypairs as schemas
from mininova.api.compute.views import keypairs as views
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Forbidden
from mininova.api.microversions import V2_2, V2_10, V2_35, V2_92
from mininova.api.pagination import next_query
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.errors import Conflict, NotFound
from mininova.store import keypairs as repo
from mininova.store.db import Row, Store
from mininova.timeutil import now_iso

_NAME_20 = re.compile(r"^[a-zA-Z0-9 _-]+$")
_NAME_292 = re.compile(r"^[a-zA-Z0-9 _\-.@]+$")


def md5_colon(data: bytes) -> str:
    raw = hashlib.md5(data).hexdigest()  # noqa: S324 - fingerprint format, not security
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def ssh_fingerprint(public_key: str) -> str:
    """Validate an OpenSSH public key and return its MD5 colon-hex fingerprint (as Nova)."""
    text = public_key.strip()
    try:
        serialization.load_ssh_public_key(text.encode("utf-8"))
        blob = base64.b64decode(text.split()[1], validate=True)
    except (ValueError, IndexError, binascii.Error, UnicodeError) as exc:
        raise BadRequest(
            f"Keypair data is invalid: failed to generate fingerprint ({exc})"
        ) from None
    except Exception:  # noqa: BLE001 - UnsupportedAlgorithm and friends
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return md5_colon(blob)


def x509_fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except Exception:  # noqa: BLE001
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    raw = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - Nova's x509 fingerprint
    return ":".join(raw[i : i + 2] for i in range(0, len(raw), 2))


def generate_ssh_key() -> tuple[str, str]:
    """A new RSA 2048 key pair: (private key PEM, OpenSSH public key), like Nova."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public + " Generated-by-Nova"


def generate_x509(user_id: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id or "mininova")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


async def create(
    store: Store,
    *,
    project_id: str,
    user_id: str,
    name: str,
    key_type: str,
    public_key: str | None,
) -> dict[str, Any]:
    """Import or generate a keypair for `user_id`: the created keypair (with `private_key`
    when it was generated, else None).

    The key_pairs quota check and the insert run in one transaction holding the user's
    quota lock, so parallel creates cannot overshoot the quota. A first check outside it
    refuses an over-quota request before an RSA key is generated for nothing. Generation
    runs in a worker thread, off the event loop.
    """
    await quota.check_keypair_quota(store, project_id, user_id)
    private_key: str | None = None
    if public_key is None:
        # ~30 ms or more of CPU each: in a thread, so the event loop keeps serving meanwhile
        if key_type == "x509":
            private_key, public_key = await asyncio.to_thread(generate_x509, user_id)
        else:
            private_key, public_key = await asyncio.to_thread(generate_ssh_key)
    if key_type == "x509":
        fingerprint = x509_fingerprint(public_key)
    else:
        fingerprint = ssh_fingerprint(public_key)
    async with store.transaction() as tx:
        await tx.lock(f"quota:user:{user_id}")
        await quota.check_keypair_quota(tx, project_id, user_id)
        if await repo.get(tx, user_id, name) is not None:
            raise Conflict(f"Key pair '{name}' already exists.")
        await repo.insert(
            tx,
            user_id=user_id,
            name=name,
            public_key=public_key,
            fingerprint=fingerprint,
            key_type=key_type,
            created_at=now_iso(),
        )
    return {
        "name": name,
        "public_key": public_key,
        "fingerprint": fingerprint,
        "user_id": user_id,
        "private_key": private_key,
        "type": key_type,
    }


async def find(store: Store, user_id: str, name: str) -> Row:
    """The keypair `name` of `user_id`; NotFound otherwise."""
    row = await repo.get(store, user_id, name)
    if row is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}")
    return row


def _target_user(request: web.Request, user_id: str | None) -> str:
    """The user whose keypairs are addressed: self, or `user_id` for an admin at ≥2.10."""
    ctx = context(request)
    if user_id is None or not mv_at_least(request, V2_10) or user_id == ctx.user_id:
        return ctx.user_id
    if not ctx.is_admin:
        raise Forbidden(
            "Policy doesn't allow os_compute_api:os-keypairs to be performed for another user."
        )
    return user_id


def _check_name(request: web.Request, name: str) -> None:
    pattern = _NAME_292 if mv_at_least(request, V2_92) else _NAME_20
    if name != name.strip() or not pattern.match(name):
        raise BadRequest(
            "Invalid input for field/attribute name. Keypair name contains "
            "unsafe characters or leading/trailing whitespace."
        )


async def create_keypair(request: web.Request) -> web.Response:
    body = await validated_body(request, schemas.create(microversion(request)))
    spec = body["keypair"]
    user_id = _target_user(request, spec.get("user_id"))
    name = spec["name"]
    _check_name(request, name)
    created = await create(
        services(request).store,
        project_id=context(request).project_id,
        user_id=user_id,
        name=name,
        key_type=spec.get("type", "ssh"),
        public_key=spec.get("public_key"),
    )
    status = 201 if mv_at_least(request, V2_2) else 200
    return json_response({"keypair": views.created(created, microversion(request))}, status=status)


async def show_keypair(request: web.Request) -> web.Response:
    user_id = _target_user(request, request.query.get("user_id"))
    row = await find(services(request).store, user_id, request.match_info["name"])
    return json_response({"keypair": views.full(row, microversion(request))})


async def delete_keypair(request: web.Request) -> web.Response:
    user_id = _target_user(request, request.query.get("user_id"))
    name = request.match_info["name"]
    if not await repo.delete_keypair(services(request).store, user_id, name):
        raise NotFound(f"Keypair {name} not found for user {user_id}")
    return web.Response(status=204 if mv_at_least(request, V2_2) else 202)


async def list_keypairs(request: web.Request) -> web.Response:
    user_id = _target_user(request, request.query.get("user_id"))
    rows = await repo.list_for_user(services(request).store, user_id)
    limit: int | None = None
    if mv_at_least(request, V2_35):
        marker = request.query.get("marker")
        if marker is not None:
            names = [r["name"] for r in rows]
            if marker not in names:
                raise BadRequest(f"marker [{marker}] not found")
            rows = rows[names.index(marker) + 1 :]
        if "limit" in request.query:
            try:
                limit = int(request.query["limit"])
            except ValueError:
                raise BadRequest("limit param must be an integer") from None
            if limit < 0:
                raise BadRequest("limit param must be positive")
            rows = rows[:limit]
    mv = microversion(request)
    body: dict[str, Any] = {"keypairs": [{"keypair": views.summary(r, mv)} for r in rows]}
    if limit is not None and rows and len(rows) >= limit:
        query = next_query(request.query, rows[-1]["name"])
        body["keypairs_links"] = [
            {"rel": "next", "href": services(request).url(f"/compute/v2.1/os-keypairs?{query}")}
        ]
    return json_response(body)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/os-keypairs"
    router.add_get(base, list_keypairs)
    router.add_post(base, create_keypair)
    router.add_get(base + "/{name}", show_keypair)
    router.add_delete(base + "/{name}", delete_keypair)
