"""API errors rendered in each service's JSON shape.

Nova: {"<kind>": {"code": N, "message": "..."}}; Keystone (under /identity):
{"error": {"code", "title", "message"}}; Neutron (under /networking):
{"NeutronError": {"type", "message", "detail"}}.
"""

from __future__ import annotations

import json

from aiohttp import web

from mininova import errors as domain

KINDS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    500: "computeFault",
    501: "notImplemented",
    503: "serviceUnavailable",
}


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class OverLimit(ApiError):
    status = 413


class NotAcceptable(ApiError):
    status = 406


# The one place a domain error becomes HTTP. Errors not listed here (NoValidHost, ...) are
# unexpected at the API and answer 500 like any other exception.
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.Invalid: 400,
    domain.QuotaExceeded: 403,
    domain.PermissionDenied: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    # A full disk on the controller: Glance's 413 for an image upload, 507 Insufficient
    # Storage for any other change the database could not store (reads keep working).
    domain.ImageStorageFull: 413,
    domain.StorageFull: 507,
}


def status_for(exc: domain.DomainError) -> int | None:
    """The HTTP status of a domain error (None: not an API-level error)."""
    for kind in type(exc).__mro__:
        status = DOMAIN_STATUS.get(kind)  # type: ignore[arg-type]
        if status is not None:
            return status
    return None


def nova_error_response(status: int, message: str) -> web.Response:
    kind = KINDS.get(status, "computeFault")
    body = {kind: {"code": status, "message": message}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def keystone_error_response(status: int, message: str) -> web.Response:
    titles = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        413: "Request Entity Too Large",
        507: "Insufficient Storage",
    }
    body = {"error": {"code": status, "title": titles.get(status, "Error"), "message": message}}
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


# Neutron's error types when a handler names none (the webob exception class names).
NEUTRON_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    406: "HTTPNotAcceptable",
    409: "HTTPConflict",
    413: "HTTPRequestEntityTooLarge",
    415: "HTTPUnsupportedMediaType",
    500: "HTTPInternalServerError",
    503: "HTTPServiceUnavailable",
    507: "HTTPInsufficientStorage",
}


def neutron_error_response(status: int, message: str, kind: str | None = None) -> web.Response:
    body = {
        "NeutronError": {
            "type": kind or NEUTRON_TYPES.get(status, "HTTPError"),
            "message": message,
            "detail": "",
        }
    }
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def error_response_for(path: str, status: int, message: str) -> web.Response:
    """The error body of the service that owns `path` (Keystone's for /identity, Neutron's
    for /networking, else Nova's)."""
    if path.startswith("/identity"):
        return keystone_error_response(status, message)
    if path == "/networking" or path.startswith("/networking/"):
        return neutron_error_response(status, message)
    return nova_error_response(status, message)
