"""Keystone v3 request JSON schemas (checked and compiled once by `api.validation`)."""

from __future__ import annotations

from typing import Any


def _wrapped(key: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key], "properties": {key: inner}}


# POST /v3/auth/tokens (password or token method; the handler checks the rest)
AUTH = _wrapped(
    "auth",
    {
        "type": "object",
        "required": ["identity"],
        "properties": {
            "identity": {
                "type": "object",
                "required": ["methods"],
                "properties": {"methods": {"type": "array", "items": {"type": "string"}}},
            },
            "scope": {"type": "object"},
        },
    },
)

# POST /v3/projects
PROJECT_CREATE = _wrapped(
    "project",
    {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "description": {"type": ["string", "null"]},
            "enabled": {"type": "boolean"},
            "domain_id": {"type": ["string", "null"]},
        },
    },
)

# PATCH /v3/projects/{id} (field types are checked by the handler, Keystone's message)
PROJECT_UPDATE = _wrapped("project", {"type": "object"})

# POST /v3/users
USER_CREATE = _wrapped(
    "user",
    {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "password": {"type": ["string", "null"]},
            "default_project_id": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "enabled": {"type": "boolean"},
            "domain_id": {"type": ["string", "null"]},
        },
    },
)

# PATCH /v3/users/{id} (field types are checked by the handler, Keystone's message)
USER_UPDATE = _wrapped("user", {"type": "object"})

# A project tag (Keystone's rule: 1-255 characters, no '/' nor ','), and a list of them; the
# limit of 80 counts the distinct tags, so the domain checks it (a repeated tag is ignored).
PROJECT_TAG = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^,/]*$"}
PROJECT_TAGS = {"type": "array", "items": PROJECT_TAG}

# PUT /v3/projects/{id}/tags
PROJECT_TAGS_UPDATE = {"type": "object", "required": ["tags"]}
