"""Request schemas of POST /os-keypairs: 2.2 adds `type`, 2.10 `user_id`, 2.92 requires
`public_key`."""

from __future__ import annotations

from typing import Any

from mininova.api.microversions import V2_1, V2_2, V2_10, V2_92, schema_for


def _create(with_type: bool, with_user: bool, key_required: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "public_key": {"type": "string"},
    }
    required = ["name"]
    if with_type:
        props["type"] = {"type": "string", "enum": ["ssh", "x509"]}
    if with_user:
        props["user_id"] = {"type": "string", "minLength": 1, "maxLength": 255}
    if key_required:
        required.append("public_key")
    return {
        "type": "object",
        "properties": {
            "keypair": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        },
        "required": ["keypair"],
        "additionalProperties": False,
    }


CREATE = [
    (V2_1, V2_2, _create(False, False, False)),
    (V2_2, V2_10, _create(True, False, False)),
    (V2_10, V2_92, _create(True, True, False)),
    (V2_92, None, _create(True, True, True)),
]


def create(version: tuple[int, int]) -> dict[str, Any]:
    """The POST schema for the request's microversion."""
    return schema_for(version, CREATE)
