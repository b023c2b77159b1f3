"""Keystone v3 request JSON schemas, compiled once at import, and the body parser using them."""

from __future__ import annotations

from typing import Any

import jsonschema
from aiohttp import web

from mininova.api.errors import BadRequest
from mininova.api.validation import json_body

Validator = jsonschema.Draft7Validator


def _compiled(schema: dict[str, Any]) -> Validator:
    Validator.check_schema(schema)
    return Validator(schema)


def _wrapped(key: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: inner}}


# POST /v3/auth/tokens (password method; the handler checks the user and the scope)
AUTH = _compiled(
    _wrapped(
        "auth",
        {
            "type": "object",
            "required": ["identity"],
            "properties": {
                "identity": {
                    "type": "object",
                    "required": ["methods"],
                    "properties": {"methods": {"type": "array", "items": {"type": "string"}}},
                },
                "scope": {"type": "object"},
            },
        },
    )
)

# POST /v3/projects
PROJECT_CREATE = _compiled(
    _wrapped(
        "project",
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": ["string", "null"]},
                "enabled": {"type": "boolean"},
                "domain_id": {"type": ["string", "null"]},
            },
        },
    )
)

# PATCH /v3/projects/{id} (field types are checked by the handler, Keystone's message)
PROJECT_UPDATE = _compiled(_wrapped("project", {"type": "object"}))

# POST /v3/users
USER_CREATE = _compiled(
    _wrapped(
        "user",
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "password": {"type": ["string", "null"]},
                "default_project_id": {"type": ["string", "null"]},
                "email": {"type": ["string", "null"]},
                "enabled": {"type": "boolean"},
                "domain_id": {"type": ["string", "null"]},
            },
        },
    )
)

# PATCH /v3/users/{id} (field types are checked by the handler, Keystone's message)
USER_UPDATE = _compiled(_wrapped("user", {"type": "object"}))


def _path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "/".join(parts) if parts else "body"


async def validated_body(request: web.Request, validator: Validator) -> Any:
    """The request's JSON body, or 400 naming the first offending field."""
    body = await json_body(request)
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        error = errors[0]
        raise BadRequest(f"Invalid input for field/attribute {_path(error)}. {error.message}")
    return body
