"""Compute API: /os-server-groups, with Nova's microversion differences.

Below 2.64 a group has `policies` (a list of exactly one policy) and `metadata`; 2.13 adds
`project_id` and `user_id`; 2.15 allows the soft-* policies; from 2.64 a group has one
`policy` plus `rules` (only anti-affinity takes a rule: `max_server_per_host`), and no longer
`policies` or `metadata`. A group is visible to its project (and to admins); membership is
written by server create (the `group` scheduler hint) and removed when an instance is deleted.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Forbidden, NotFound
from mininova.api.microversions import (
    V2_1,
    V2_13,
    V2_15,
    V2_64,
    Field,
    render_fields,
    schema_for,
)
from mininova.api.validation import validated_body
from mininova.store import Store
from mininova.store.db import Row, dumps, loads
from mininova.timeutil import now_iso

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")
_LEGACY_POLICIES = ("affinity", "anti-affinity")
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


def _policies_schema(allowed: tuple[str, ...]) -> dict[str, Any]:
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


_POLICY_SCHEMA = _wrap(
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

# POST /os-server-groups: `policies` (soft-* from 2.15), then one `policy` + `rules` from 2.64.
_CREATE_SCHEMAS = [
    (V2_1, V2_15, _policies_schema(_LEGACY_POLICIES)),
    (V2_15, V2_64, _policies_schema(POLICIES)),
    (V2_64, None, _POLICY_SCHEMA),
]


@dataclass(frozen=True)
class _Group:
    row: Row
    members: list[str]


# The server group view, in response order.
GROUP_FIELDS: tuple[Field[_Group], ...] = (
    Field("id", lambda g: g.row["id"]),
    Field("name", lambda g: g.row["name"]),
    Field("policy", lambda g: g.row["policy"], since=V2_64),
    Field("rules", lambda g: loads(g.row["rules"], {}) or {}, since=V2_64),
    Field("policies", lambda g: [g.row["policy"]], until=V2_64),
    Field("members", lambda g: g.members),
    Field("metadata", lambda g: loads(g.row["metadata"], {}) or {}, until=V2_64),
    Field("project_id", lambda g: g.row["project_id"], since=V2_13),
    Field("user_id", lambda g: g.row["user_id"], since=V2_13),
)


async def group_members(store: Store, group_id: str) -> list[str]:
    rows = await store.fetchall(
        "SELECT m.instance_uuid FROM server_group_members m JOIN instances i"
        " ON i.uuid = m.instance_uuid AND i.deleted = 0"
        " WHERE m.group_id = ? ORDER BY i.id",
        (group_id,),
    )
    return [r["instance_uuid"] for r in rows]


async def groups_of_instance(store: Store, instance_uuid: str) -> list[str]:
    """The ids of the groups an instance belongs to (at most one), for `server_groups`."""
    rows = await store.fetchall(
        "SELECT group_id FROM server_group_members WHERE instance_uuid = ?", (instance_uuid,)
    )
    return [r["group_id"] for r in rows]


async def find_visible(store: Store, group_id: str, project_id: str, is_admin: bool) -> Row | None:
    """The group if the caller may see it: its own project's, or any for an admin."""
    row = await store.fetchone("SELECT * FROM server_groups WHERE id = ?", (group_id,))
    if row is None or (not is_admin and row["project_id"] != project_id):
        return None
    return row


async def _view(request: web.Request, row: Row) -> dict[str, Any]:
    members = await group_members(services(request).store, row["id"])
    return render_fields(GROUP_FIELDS, microversion(request), _Group(row, members))


async def _get(request: web.Request) -> Row:
    ctx = context(request)
    group_id = request.match_info["group_id"]
    row = await find_visible(services(request).store, group_id, ctx.project_id, ctx.is_admin)
    if row is None:
        raise NotFound(f"Instance group {group_id} could not be found.")
    return row


async def create_group(request: web.Request) -> web.Response:
    ctx = context(request)
    schema = schema_for(microversion(request), _CREATE_SCHEMAS)
    spec = (await validated_body(request, schema))["server_group"]
    rules: dict[str, Any] = {}
    if mv_at_least(request, V2_64):
        policy = spec["policy"]
        if spec.get("rules"):
            if policy != "anti-affinity":
                raise BadRequest("Only anti-affinity policy supports rules.")
            rules = {"max_server_per_host": int(spec["rules"]["max_server_per_host"])}
    else:
        policy = spec["policies"][0]
    store = services(request).store
    group_id = str(uuidlib.uuid4())
    async with store.transaction():
        limits = await quota.get_limits(store, ctx.project_id)
        usage = await quota.get_usage(store, ctx.project_id)
        limit = limits["server_groups"]
        if 0 <= limit < usage["server_groups"] + 1:
            raise Forbidden("Quota exceeded, too many server groups.")
        await store.execute(
            "INSERT INTO server_groups (id, name, project_id, user_id, policy, rules,"
            " metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, '{}', ?)",
            (group_id, spec["name"], ctx.project_id, ctx.user_id, policy, dumps(rules), now_iso()),
        )
    row = await store.fetchone("SELECT * FROM server_groups WHERE id = ?", (group_id,))
    assert row is not None
    return web.json_response({"server_group": await _view(request, row)})


async def show_group(request: web.Request) -> web.Response:
    row = await _get(request)
    return web.json_response({"server_group": await _view(request, row)})


async def delete_group(request: web.Request) -> web.Response:
    row = await _get(request)
    store = services(request).store
    async with store.transaction():
        await store.execute("DELETE FROM server_group_members WHERE group_id = ?", (row["id"],))
        await store.execute("DELETE FROM server_groups WHERE id = ?", (row["id"],))
    return web.Response(status=204)


def _int_param(request: web.Request, name: str, minimum: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"Invalid input for query parameters {name}. Value: {raw}. '{raw}' is not an integer"
        ) from None
    if value < minimum:
        raise BadRequest(
            f"Invalid input for query parameters {name}. Value: {raw}. "
            f"{value} is less than the minimum of {minimum}"
        )
    return value


async def list_groups(request: web.Request) -> web.Response:
    ctx = context(request)
    raw_all = request.query.get("all_projects")
    all_projects = raw_all is not None and raw_all.strip().lower() in (
        "",
        "1",
        "true",
        "t",
        "yes",
        "y",
        "on",
    )
    limit = _int_param(request, "limit", 0)
    offset = _int_param(request, "offset", 0) or 0
    store = services(request).store
    if ctx.is_admin and all_projects:
        rows = await store.fetchall("SELECT * FROM server_groups ORDER BY created_at, rowid")
    else:
        rows = await store.fetchall(
            "SELECT * FROM server_groups WHERE project_id = ? ORDER BY created_at, rowid",
            (ctx.project_id,),
        )
    rows = rows[offset:]
    if limit is not None:
        rows = rows[:limit]
    return web.json_response({"server_groups": [await _view(request, r) for r in rows]})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/os-server-groups"
    router.add_get(base, list_groups)
    router.add_post(base, create_group)
    router.add_get(base + "/{group_id}", show_group)
    router.add_delete(base + "/{group_id}", delete_group)
