"""Request schemas of the compute image proxy's metadata: `{"metadata": {...}}` and
`{"meta": {key: value}}` bodies (validators compiled once; Nova's per-key messages)."""

from __future__ import annotations

from typing import Any

import jsonschema

from mininova.api.errors import BadRequest
from mininova.image.store_ops import RESERVED

METADATA = {"type": "object"}
META_KEY = {"type": "string", "minLength": 1, "maxLength": 255}
META_VALUE = {"type": "string", "maxLength": 255}

_METADATA = jsonschema.Draft4Validator(METADATA)
_META_KEY = jsonschema.Draft4Validator(META_KEY)
_META_VALUE = jsonschema.Draft4Validator(META_VALUE)


def metadata_of(body: Any, member: str = "metadata") -> Any:
    """The `metadata` (or `meta`) member of a body, None when the body is no object."""
    return body.get(member) if isinstance(body, dict) else None


def check_meta(meta: Any) -> dict[str, str]:
    """A metadata object: keys of 1-255 characters that are not reserved, string values."""
    if not _METADATA.is_valid(meta):
        raise BadRequest("Malformed request body: metadata must be an object.")
    out: dict[str, str] = {}
    for key, value in meta.items():
        if not _META_KEY.is_valid(key):
            raise BadRequest("Metadata key must be 1 to 255 characters long.")
        if key in RESERVED:
            raise BadRequest(f"Metadata key '{key}' is reserved.")
        if not _META_VALUE.is_valid(value):
            raise BadRequest(f"Invalid value for metadata key '{key}'.")
        out[key] = value
    return out


def check_meta_item(body: Any, key: str) -> dict[str, str]:
    """`PUT /images/{id}/metadata/{key}`: exactly one item, named like the URL."""
    meta = metadata_of(body, "meta")
    if not isinstance(meta, dict) or len(meta) != 1:
        raise BadRequest("Request body must contain exactly one 'meta' item.")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    return check_meta(meta)
