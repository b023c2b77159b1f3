"""/v3/auth/tokens: issue (password method), validate (GET/HEAD) and revoke (DELETE)."""

from __future__ import annotations

from aiohttp import web

from mininova.api.context import services
from mininova.api.errors import BadRequest, NotFound, Unauthorized
from mininova.api.identity import schemas, views
from mininova.api.services import Services
from mininova.api.validation import validated_body
from mininova.identity.service import AuthFailed, TokenInfo


def _body(svc: Services, info: TokenInfo) -> dict:
    return views.token(info, views.catalog(svc.url, svc.config.region))


async def create_token(request: web.Request) -> web.Response:
    svc = services(request)
    body = await validated_body(request, schemas.AUTH)
    identity = body["auth"]["identity"]
    if "password" not in identity["methods"]:
        raise Unauthorized("Only password authentication is supported.")
    user = (identity.get("password") or {}).get("user")
    if not isinstance(user, dict) or not isinstance(user.get("password"), str):
        raise BadRequest("auth.identity.password.user with a password is required.")
    scope = body["auth"].get("scope") or {}
    project = scope.get("project") if isinstance(scope, dict) else None
    if project is not None and not isinstance(project, dict):
        raise BadRequest("auth.scope.project must be an object.")
    try:
        token, info = await svc.identity.authenticate(user, user["password"], project)
    except AuthFailed as exc:
        raise Unauthorized(str(exc)) from None
    response = web.json_response(_body(svc, info), status=201)
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
    response = web.json_response(_body(services(request), info))
    response.headers["X-Subject-Token"] = subject
    return response


async def revoke_token(request: web.Request) -> web.Response:
    subject, _ = await _subject(request)
    await services(request).identity.revoke(subject)
    return web.Response(status=204)
