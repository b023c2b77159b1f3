"""/v3/auth/tokens: issue (password or token method), validate (GET/HEAD), revoke (DELETE).

Password logins are limited per user (Keystone's lockout, 401) and per source address (429
with Retry-After); see `mininova.identity.login_limits`. The address is the TCP peer's, never
a forwarding header. Token-method failures are not counted: a token is a 256-bit secret
nobody can guess, checking one costs no hashing, and counting them would let one script
retrying an expired token shut every password login out of a shared address.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mininova.api.context import services
from mininova.api.errors import BadRequest, NotFound, Unauthorized
from mininova.api.identity import schemas, views
from mininova.api.responses import json_response
from mininova.api.services import Services
from mininova.api.validation import validated_body
from mininova.identity.service import AuthFailed, TokenInfo, TooManyAttempts


def _body(svc: Services, info: TokenInfo) -> dict:
    return views.token(info, views.catalog(svc.url, svc.config.region))


def _missing(attribute: str, target: str) -> BadRequest:
    """Keystone's 400 for a required attribute that is absent."""
    return BadRequest(
        f"Expecting to find {attribute} in {target}. The server could not comply with the "
        "request since it is either malformed or otherwise incorrect. The client is assumed "
        "to be in error."
    )


def _scope_project(auth: dict[str, Any]) -> dict | None:
    """The project the request scopes to (by id, or by name and domain), or None."""
    scope = auth.get("scope") or {}
    project = scope.get("project") if isinstance(scope, dict) else None
    if project is not None and not isinstance(project, dict):
        raise BadRequest("auth.scope.project must be an object.")
    return project


def peer_address(request: web.Request) -> str | None:
    """The socket peer's IP address (what a proxy in front cannot make a client forge)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


def _too_many(exc: TooManyAttempts) -> web.Response:
    """429 in Keystone's error shape, with Retry-After."""
    body = {"error": {"code": 429, "title": "Too Many Requests", "message": str(exc)}}
    return web.Response(
        status=429,
        text=json.dumps(body),
        content_type="application/json",
        headers={"Retry-After": str(exc.retry_after)},
    )


async def create_token(request: web.Request) -> web.Response:
    svc = services(request)
    auth = (await validated_body(request, schemas.AUTH))["auth"]
    identity = auth["identity"]
    methods = identity["methods"]
    project = _scope_project(auth)
    try:
        if "password" in methods:
            user = (identity.get("password") or {}).get("user")
            if not isinstance(user, dict) or not isinstance(user.get("password"), str):
                raise BadRequest("auth.identity.password.user with a password is required.")
            token, info = await svc.identity.authenticate(
                user, user["password"], project, address=peer_address(request)
            )
        elif "token" in methods:
            ref = identity.get("token")
            if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
                raise _missing("id", "token")
            token, info = await svc.identity.rescope(ref["id"], project)
        else:
            raise Unauthorized("Attempted to authenticate with an unsupported method.")
    except AuthFailed as exc:
        raise Unauthorized(str(exc)) from None
    except TooManyAttempts as exc:
        return _too_many(exc)
    response = json_response(_body(svc, info), status=201)
    response.headers["X-Subject-Token"] = token
    return response


async def _subject(request: web.Request) -> tuple[str, TokenInfo]:
    subject = request.headers.get("X-Subject-Token")
    if not subject:
        raise BadRequest("X-Subject-Token header is required.")
    try:
        return subject, await services(request).identity.validate(subject)
    except AuthFailed:
        raise NotFound("Could not find token.") from None


async def validate_token(request: web.Request) -> web.Response:
    subject, info = await _subject(request)
    if request.method == "HEAD":
        return web.Response(status=200, headers={"X-Subject-Token": subject})
    response = json_response(_body(services(request), info))
    response.headers["X-Subject-Token"] = subject
    return response


async def revoke_token(request: web.Request) -> web.Response:
    subject, _ = await _subject(request)
    await services(request).identity.revoke(subject)
    return web.Response(status=204)
