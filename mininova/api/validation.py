"""Request body parsing and JSON-schema validation → 400 naming the offending field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from aiohttp import web

from mininova.api.errors import BadRequest, OverLimit

MAX_BODY = 1024 * 1024


async def json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise OverLimit("Request is too large.")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise OverLimit("Request is too large.")
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None


def _path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "/".join(parts) if parts else "body"


def validate(body: Any, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        raise BadRequest(f"Invalid input for field/attribute {_path(error)}. {error.message}")


async def validated_body(request: web.Request, schema: dict[str, Any]) -> Any:
    body = await json_body(request)
    validate(body, schema)
    return body


NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^(?!\s*$).+"}
