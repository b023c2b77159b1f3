"""Request schemas of POST /os-server-groups: `policies` (soft-* from 2.15), then one
`policy` plus `rules` from 2.64."""

from __future__ import annotations

from typing import Any

from mininova.api.microversions import V2_1, V2_15, V2_64, schema_for

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")
LEGACY_POLICIES = ("affinity", "anti-affinity")

_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^(?![\s\u00a0])(?!.*[\s\u00a0]$).*$",
}
_POSITIVE = {
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": r"^[1-9][0-9]*$"}]
}


def _wrap(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "server_group": {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        },
        "required": ["server_group"],
        "additionalProperties": False,
    }


def _policies(allowed: tuple[str, ...]) -> dict[str, Any]:
    props = {
        "name": _NAME,
        "policies": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(allowed)},
        },
    }
    return _wrap(props, ["name", "policies"])


_POLICY = _wrap(
    {
        "name": _NAME,
        "policy": {"type": "string", "enum": list(POLICIES)},
        "rules": {
            "type": "object",
            "properties": {"max_server_per_host": _POSITIVE},
            "additionalProperties": False,
        },
    },
    ["name", "policy"],
)

CREATE = [
    (V2_1, V2_15, _policies(LEGACY_POLICIES)),
    (V2_15, V2_64, _policies(POLICIES)),
    (V2_64, None, _POLICY),
]


def create(version: tuple[int, int]) -> dict[str, Any]:
    """The POST schema for the request's microversion."""
    return schema_for(version, CREATE)
