"""Request schema of POST /flavors/{id}/action: addTenantAccess / removeTenantAccess."""

from __future__ import annotations

_TENANT = {
    "type": "object",
    "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["tenant"],
    "additionalProperties": False,
}

ACTIONS = ("addTenantAccess", "removeTenantAccess")

ACTION = {
    "type": "object",
    "properties": {name: _TENANT for name in ACTIONS},
    "minProperties": 1,
    "maxProperties": 1,
}
