"""Glance request validation: JSON schemas of the image fields, compiled once at import.

Glance checks each field on its own (create bodies and JSON-patch values alike) and names the
field in its message, so there is one validator per field rather than one per request.
Draft 4 keeps `1.0` from passing as an integer (and `true`, as in every draft).
"""

from __future__ import annotations

from typing import Any

import jsonschema

from mininova.api.errors import BadRequest, Forbidden, OverLimit
from mininova.image.store_ops import CONTAINER_FORMATS, DISK_FORMATS, VISIBILITIES

MAX_TAGS = 128
MAX_PROPERTIES = 128
PATCH_OPS = ("add", "replace", "remove")

NAME = {"type": ["string", "null"], "maxLength": 255}
COUNT = {"type": "integer", "minimum": 0, "maximum": 2**31}
FLAG = {"type": "boolean"}
TAGS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 255}}
DISK_FORMAT = {"enum": [*DISK_FORMATS, None]}
CONTAINER_FORMAT = {"enum": [*CONTAINER_FORMATS, None]}
VISIBILITY = {"enum": list(VISIBILITIES)}
OWNER = {"type": "string", "minLength": 1}
IMAGE_ID = {"type": "string"}
PROPERTY_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
PROPERTY_VALUE = {"type": "string", "maxLength": 65535}
CREATE = {"type": "object"}
PATCH = {"type": "array"}
PATCH_OP = {"type": "object"}


def _compiled(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


_NAME = _compiled(NAME)
_COUNT = _compiled(COUNT)
_FLAG = _compiled(FLAG)
_TAGS = _compiled(TAGS)
_FORMATS = {"disk_format": _compiled(DISK_FORMAT), "container_format": _compiled(CONTAINER_FORMAT)}
_ALLOWED = {"disk_format": DISK_FORMATS, "container_format": CONTAINER_FORMATS}
_VISIBILITY = _compiled(VISIBILITY)
_OWNER = _compiled(OWNER)
_IMAGE_ID = _compiled(IMAGE_ID)
_PROPERTY_NAME = _compiled(PROPERTY_NAME)
_PROPERTY_VALUE = _compiled(PROPERTY_VALUE)
_CREATE = _compiled(CREATE)
_PATCH = _compiled(PATCH)
_PATCH_OP = _compiled(PATCH_OP)


def check_create_body(body: Any) -> dict[str, Any]:
    if not _CREATE.is_valid(body):
        raise BadRequest("The request body must be a JSON object.")
    return body


def check_patch_body(body: Any) -> list[Any]:
    if not _PATCH.is_valid(body):
        raise BadRequest("The request body must be a JSON array of patch operations.")
    return body


def check_patch_op(change: Any) -> dict[str, Any]:
    if not _PATCH_OP.is_valid(change):
        raise BadRequest("Each patch operation must be a JSON object.")
    return change


def name(value: Any) -> str | None:
    if not _NAME.is_valid(value):
        raise BadRequest("Invalid value for 'name': a string of at most 255 characters.")
    return value


def count(key: str, value: Any) -> int:
    if not _COUNT.is_valid(value):
        raise BadRequest(f"Invalid value for '{key}': a non-negative integer is required.")
    return value


def flag(key: str, value: Any) -> bool:
    if not _FLAG.is_valid(value):
        raise BadRequest(f"Invalid value for '{key}': a boolean is required.")
    return value


def fmt(key: str, value: Any) -> str | None:
    """disk_format / container_format: one of the known formats, or null."""
    if not _FORMATS[key].is_valid(value):
        raise BadRequest(
            f"Invalid value '{value}' for '{key}': expected one of {', '.join(_ALLOWED[key])}."
        )
    return value


def tags(value: Any) -> list[str]:
    """A tag list without duplicates (order kept); 413 past MAX_TAGS."""
    if not _TAGS.is_valid(value):
        raise BadRequest("Invalid value for 'tags': a list of non-empty strings is required.")
    if len(value) > MAX_TAGS:
        raise OverLimit("Maximum number of tags exceeded.")
    return list(dict.fromkeys(value))


def visibility(ctx: Any, value: Any) -> str:
    if not _VISIBILITY.is_valid(value):
        raise BadRequest(
            f"Invalid value '{value}' for 'visibility': expected one of {', '.join(VISIBILITIES)}."
        )
    if value == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to publicize images (visibility 'public').")
    return value


def owner(value: Any) -> str:
    if not _OWNER.is_valid(value):
        raise BadRequest("Invalid value for 'owner'.")
    return value


def image_id(value: Any) -> bool:
    """Whether the value may be a client-chosen image id's text (a string; UUID checked after)."""
    return _IMAGE_ID.is_valid(value)


def property_item(key: str, value: Any) -> str:
    if not _PROPERTY_NAME.is_valid(key):
        raise BadRequest("Property names must be 1 to 255 characters long.")
    error = next(_PROPERTY_VALUE.iter_errors(value), None)
    if error is not None:
        if error.validator == "maxLength":
            raise BadRequest(f"Value of property '{key}' is too long.")
        raise BadRequest(f"Invalid value for property '{key}': a string is required.")
    return value


def property_count(properties: dict[str, str]) -> None:
    if len(properties) > MAX_PROPERTIES:
        raise OverLimit("Maximum number of image properties exceeded.")
