"""Request body parsing and JSON-schema validation → 400 naming the offending field."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from aiohttp import web

from mininova.api.context import SERVICES
from mininova.api.errors import BadRequest, OverLimit

DEFAULT_MAX_BODY = 114688  # Nova's (oslo.middleware's) max_request_body_size
TOO_LARGE = "Request is too large."


def max_body(request: web.Request) -> int:
    """The JSON body limit: the cloud's `max_request_body_size` (bytes)."""
    svc = request.config_dict.get(SERVICES)
    return int(svc.config.max_request_body_size) if svc is not None else DEFAULT_MAX_BODY


async def read_body(request: web.Request) -> bytes:
    """The whole request body, however many TCP segments it spans, or 413 over the limit
    (a declared Content-Length over it is refused before anything is read)."""
    limit = max_body(request)
    if request.content_length is not None and request.content_length > limit:
        raise OverLimit(TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):  # a body may span reads
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise OverLimit(TOO_LARGE)
    return b"".join(chunks)


async def json_body(request: web.Request) -> Any:
    raw = await read_body(request)
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
