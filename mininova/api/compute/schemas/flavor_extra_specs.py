"""Request schemas of /flavors/{id}/os-extra_specs (keys and values are checked in the handler)."""

from __future__ import annotations

# POST /flavors/{id}/os-extra_specs
CREATE = {
    "type": "object",
    "properties": {"extra_specs": {"type": "object"}},
    "required": ["extra_specs"],
    "additionalProperties": False,
}

# PUT /flavors/{id}/os-extra_specs/{key}: {key: value}, exactly one item.
UPDATE = {"type": "object", "minProperties": 1}
