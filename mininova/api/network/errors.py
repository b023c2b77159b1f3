"""Neutron's typed errors: a handler raises `NeutronFault(type, status, message)`.

Errors without a Neutron type (domain errors, schema errors, auth) reach the app's middleware
and `api.errors.error_response_for` gives them the same body with the status's generic type.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from mininova.api.errors import ApiError, neutron_error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NeutronFault(ApiError):
    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(message, status)
        self.kind = kind


def not_found(kind: str, object_id: str) -> NeutronFault:
    """NetworkNotFound / SubnetNotFound / PortNotFound."""
    return NeutronFault(f"{kind}NotFound", 404, f"{kind} {object_id} could not be found.")


def invalid_input(message: str) -> NeutronFault:
    return NeutronFault("InvalidInput", 400, f"Invalid input for operation: {message}.")


def bad_request(message: str) -> NeutronFault:
    return NeutronFault("HTTPBadRequest", 400, message)


def policy_denied(rule: str) -> NeutronFault:
    return NeutronFault("PolicyNotAuthorized", 403, f"({rule}) is disallowed by policy.")


def neutron_handler(fn: Handler) -> Handler:
    """Render a handler's NeutronFault with its type (others go to the app middleware)."""

    @functools.wraps(fn)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except NeutronFault as exc:
            return neutron_error_response(exc.status, exc.message, exc.kind)

    return wrapper
