"""Helpers every network resource shares: body checks with Neutron's messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from mininova.api.errors import BadRequest
from mininova.api.network.errors import bad_request
from mininova.api.validation import json_body, validate


async def body_of(
    request: web.Request, resource: str, attributes: Iterable[str], schema: dict[str, Any]
) -> dict[str, Any]:
    """The `resource` object of a POST body: unknown attributes → Neutron's 400, then the schema."""
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get(resource), dict):
        raise bad_request(f"Resource body required; expected a '{resource}' object")
    unknown = sorted(set(body[resource]) - set(attributes))
    if unknown:
        raise bad_request("Unrecognized attribute(s) '" + ", ".join(unknown) + "'")
    try:
        validate(body, schema)
    except BadRequest as exc:
        raise bad_request(exc.message) from None
    return body[resource]


def owner(request_project: str, given: dict[str, Any], is_admin: bool) -> str:
    """The project a new object belongs to (`project_id`/`tenant_id` only for admins)."""
    project = given.get("project_id") or given.get("tenant_id") or request_project
    if project != request_project and not is_admin:
        raise bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges"
        )
    return project
