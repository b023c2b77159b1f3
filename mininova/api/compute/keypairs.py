"""Compute API: keypairs (per user), with Nova's microversion differences.

2.2 adds `type` (and 201/204 status codes), 2.10 the admin `user_id` parameter, 2.35
`limit`/`marker` on the list, 2.92 makes `public_key` mandatory and allows `.`/`@` in names.
"""

from __future__ import annotations

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
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Conflict, Forbidden, NotFound
from mininova.api.microversions import (
    V2_1,
    V2_2,
    V2_10,
    V2_35,
    V2_92,
    Field,
    render_fields,
    schema_for,
)
from mininova.api.validation import validated_body
from mininova.store.db import Row
from mininova.timeutil import nova_usec_time, now_iso

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


def _build_create_schema(with_type: bool, with_user: bool, key_required: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "public_key": {"type": "string"},
    }
    required = ["name"]
    if with_type:
        props["type"] = {"type": "string", "enum": ["ssh", "x509"]}
    if with_user:
        props["user_id"] = {"type": "string", "minLength": 1, "maxLength": 255}
    if key_required:
        required.append("public_key")
    return {
        "type": "object",
        "properties": {
            "keypair": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        },
        "required": ["keypair"],
        "additionalProperties": False,
    }


# POST /os-keypairs: 2.2 adds `type`, 2.10 `user_id`, 2.92 requires `public_key`.
_CREATE_SCHEMAS = [
    (V2_1, V2_2, _build_create_schema(False, False, False)),
    (V2_2, V2_10, _build_create_schema(True, False, False)),
    (V2_10, V2_92, _build_create_schema(True, True, False)),
    (V2_92, None, _build_create_schema(True, True, True)),
]


def _check_name(request: web.Request, name: str) -> None:
    pattern = _NAME_292 if mv_at_least(request, V2_92) else _NAME_20
    if name != name.strip() or not pattern.match(name):
        raise BadRequest(
            "Invalid input for field/attribute name. Keypair name contains "
            "unsafe characters or leading/trailing whitespace."
        )


def _key(name: str) -> Field[Any]:
    return Field(name, lambda r: r[name])


# The keypair views, in response order: list items, GET, and the POST answer.
SUMMARY_FIELDS: tuple[Field[Any], ...] = (
    _key("name"),
    _key("public_key"),
    _key("fingerprint"),
    Field("type", lambda r: r["type"], since=V2_2),
)
FULL_FIELDS: tuple[Field[Any], ...] = (
    _key("public_key"),
    _key("name"),
    _key("fingerprint"),
    _key("user_id"),
    Field("deleted", lambda r: False),
    Field("created_at", lambda r: nova_usec_time(r["created_at"])),
    Field("updated_at", lambda r: None),
    Field("deleted_at", lambda r: None),
    Field("id", lambda r: int(r["id"])),
    Field("type", lambda r: r["type"], since=V2_2),
)
CREATED_FIELDS: tuple[Field[Any], ...] = (
    _key("name"),
    _key("public_key"),
    _key("fingerprint"),
    _key("user_id"),
    Field("private_key", lambda r: r["private_key"], when=lambda r: r["private_key"] is not None),
    Field("type", lambda r: r["type"], since=V2_2),
)


def _summary(request: web.Request, row: Row) -> dict[str, Any]:
    return render_fields(SUMMARY_FIELDS, microversion(request), row)


def _full(request: web.Request, row: Row) -> dict[str, Any]:
    return render_fields(FULL_FIELDS, microversion(request), row)


async def create_keypair(request: web.Request) -> web.Response:
    body = await validated_body(request, schema_for(microversion(request), _CREATE_SCHEMAS))
    spec = body["keypair"]
    ctx = context(request)
    user_id = _target_user(request, spec.get("user_id"))
    name = spec["name"]
    _check_name(request, name)
    key_type = spec.get("type", "ssh")
    public_key = spec.get("public_key")
    private_key: str | None = None
    store = services(request).store
    await quota.check_keypair_quota(store, ctx.project_id, user_id)
    if public_key is None:
        if key_type == "x509":
            private_key, public_key = generate_x509(user_id)
        else:
            private_key, public_key = generate_ssh_key()
    if key_type == "x509":
        fingerprint = x509_fingerprint(public_key)
    else:
        fingerprint = ssh_fingerprint(public_key)
    async with store.transaction():
        exists = await store.fetchone(
            "SELECT 1 AS x FROM keypairs WHERE user_id = ? AND name = ?", (user_id, name)
        )
        if exists:
            raise Conflict(f"Key pair '{name}' already exists.")
        await store.execute(
            "INSERT INTO keypairs (user_id, name, public_key, fingerprint, type, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, name, public_key, fingerprint, key_type, now_iso()),
        )
    created = {
        "name": name,
        "public_key": public_key,
        "fingerprint": fingerprint,
        "user_id": user_id,
        "private_key": private_key,
        "type": key_type,
    }
    view = render_fields(CREATED_FIELDS, microversion(request), created)
    status = 201 if mv_at_least(request, V2_2) else 200
    return web.json_response({"keypair": view}, status=status)


async def _get(request: web.Request) -> Row:
    user_id = _target_user(request, request.query.get("user_id"))
    name = request.match_info["name"]
    row = await services(request).store.fetchone(
        "SELECT * FROM keypairs WHERE user_id = ? AND name = ?", (user_id, name)
    )
    if row is None:
        raise NotFound(f"Keypair {name} not found for user {user_id}")
    return row


async def show_keypair(request: web.Request) -> web.Response:
    row = await _get(request)
    return web.json_response({"keypair": _full(request, row)})


async def delete_keypair(request: web.Request) -> web.Response:
    row = await _get(request)
    await services(request).store.execute("DELETE FROM keypairs WHERE id = ?", (row["id"],))
    return web.Response(status=204 if mv_at_least(request, V2_2) else 202)


async def list_keypairs(request: web.Request) -> web.Response:
    user_id = _target_user(request, request.query.get("user_id"))
    rows = await services(request).store.fetchall(
        "SELECT * FROM keypairs WHERE user_id = ? ORDER BY name, id", (user_id,)
    )
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
    body: dict[str, Any] = {"keypairs": [{"keypair": _summary(request, r)} for r in rows]}
    if limit is not None and rows and len(rows) >= limit:
        params = {k: v for k, v in request.query.items() if k != "marker"}
        params["marker"] = rows[-1]["name"]
        query = "&".join(f"{k}={v}" for k, v in params.items())
        body["keypairs_links"] = [
            {"rel": "next", "href": services(request).url(f"/compute/v2.1/os-keypairs?{query}")}
        ]
    return web.json_response(body)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/os-keypairs"
    router.add_get(base, list_keypairs)
    router.add_post(base, create_keypair)
    router.add_get(base + "/{name}", show_keypair)
    router.add_delete(base + "/{name}", delete_keypair)
