"""Request schemas of PUT /os-services: the 2.53 update by id, and the older actions
(`/os-services/{enable,disable,disable-log-reason,force-down}`, force-down from 2.11)."""

from __future__ import annotations

from typing import Any

_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}

UPDATE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "disabled_reason": _TEXT,
        "forced_down": {"type": "boolean"},
    },
    "additionalProperties": False,
}


def _action(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"host": _TEXT, "binary": _TEXT, **extra},
        "required": ["host", "binary", *extra],
    }


LEGACY_ACTIONS: dict[str, dict[str, Any]] = {
    "enable": _action({}),
    "disable": _action({}),
    "disable-log-reason": _action({"disabled_reason": _TEXT}),
    "force-down": _action({"forced_down": {"type": "boolean"}}),
}
