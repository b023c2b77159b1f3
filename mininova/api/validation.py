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
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY + 1 - size):  # a body may span reads
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise OverLimit("Request is too large.")
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed request body: {exc}") from None


def _path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "/".join(parts) if parts else "body"


def _number(instance: str) -> float | None:
    """A numeric string's value (Nova's `_number_from_str`); None when it is no number."""
    try:
        return int(instance)
    except ValueError:
        try:
            return float(instance)  # a digit string too long for int() is inf here
        except ValueError:
            return None


def _bound(check: Any) -> Any:
    """`minimum`/`maximum` that also bound numeric strings ({"type": ["integer", "string"]}
    fields), as Nova's validator does: "99999999999999999999" is a 400, not an overflow."""

    def validate(validator: Any, bound: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, str):
            number = _number(instance)
            if number is None:
                return
            instance = number
        yield from check(validator, bound, instance, schema)

    return validate


Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {
        "minimum": _bound(jsonschema.Draft7Validator.VALIDATORS["minimum"]),
        "maximum": _bound(jsonschema.Draft7Validator.VALIDATORS["maximum"]),
    },
)
_validators: dict[int, tuple[dict[str, Any], Any]] = {}


def compiled(schema: dict[str, Any]) -> Any:
    """The schema's validator, built once (schemas are module-level constants)."""
    found = _validators.get(id(schema))
    if found is None or found[0] is not schema:
        if len(_validators) > 1024:  # a schema built per call must not grow this forever
            _validators.clear()
        Validator.check_schema(schema)
        found = _validators[id(schema)] = (schema, Validator(schema))
    return found[1]


def validate(body: Any, schema: dict[str, Any]) -> None:
    validator = compiled(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        error = errors[0]
        raise BadRequest(f"Invalid input for field/attribute {_path(error)}. {error.message}")


async def validated_body(request: web.Request, schema: dict[str, Any]) -> Any:
    body = await json_body(request)
    validate(body, schema)
    return body


NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^(?!\s*$).+"}
