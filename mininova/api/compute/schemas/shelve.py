"""Request schemas of the unshelve action's argument (`{"unshelve": <this>}`)."""

from __future__ import annotations

from typing import Any

from mininova.api.compute.schemas.servers import NAME

# 2.77-2.90: null, or an object naming the availability zone (an empty object is refused)
UNSHELVE_V277: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {"availability_zone": NAME},
    "required": ["availability_zone"],
    "additionalProperties": False,
}
# 2.91+: null, or an object with a zone (null unpins it) and/or a host
UNSHELVE_V291: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "availability_zone": {"oneOf": [{"type": "null"}, NAME]},
        "host": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "minProperties": 1,
    "additionalProperties": False,
}
