"""Request schemas of /flavors: create (`description` from 2.55) and update (2.55+)."""

from __future__ import annotations

from typing import Any

from mininova.api.microversions import V2_1, V2_55, schema_for

POSITIVE = {
    "type": ["integer", "string"],
    "pattern": r"^[0-9]*$",
    "minimum": 1,
    "maximum": 2147483647,
}
NON_NEGATIVE = {
    "type": ["integer", "string"],
    "pattern": r"^[0-9]*$",
    "minimum": 0,
    "maximum": 2147483647,
}
DESCRIPTION = {
    "type": ["string", "null"],
    "maxLength": 65535,
    "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
}


def _create(with_description: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^(?!\s)[\s\S]*(?<!\s)$",
        },
        # As Nova: a string or a number (stored and shown as its string), or null.
        "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255},
        "ram": POSITIVE,
        "vcpus": POSITIVE,
        "disk": NON_NEGATIVE,
        "OS-FLV-EXT-DATA:ephemeral": NON_NEGATIVE,
        "swap": {"anyOf": [NON_NEGATIVE, {"type": "string", "enum": [""]}]},
        "rxtx_factor": {
            "type": ["number", "string"],
            "pattern": r"^[0-9]+(\.[0-9]+)?$",
            "exclusiveMinimum": 0,
            "maximum": 3.40282e38,
        },
        "os-flavor-access:is_public": {"type": ["boolean", "string"]},
    }
    if with_description:
        props["description"] = DESCRIPTION
    return {
        "type": "object",
        "properties": {
            "flavor": {
                "type": "object",
                "properties": props,
                "required": ["name", "ram", "vcpus", "disk"],
                "additionalProperties": False,
            }
        },
        "required": ["flavor"],
        "additionalProperties": False,
    }


# POST /flavors: `description` from 2.55.
CREATE = [
    (V2_1, V2_55, _create(False)),
    (V2_55, None, _create(True)),
]


def create(version: tuple[int, int]) -> dict[str, Any]:
    """The POST schema for the request's microversion."""
    return schema_for(version, CREATE)


# PUT /flavors/{id} (2.55+): only the description changes.
UPDATE = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {"description": DESCRIPTION},
            "required": ["description"],
            "additionalProperties": False,
        }
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
