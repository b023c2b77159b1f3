"""Compute API: /os-server-groups, with Nova's microversion differences.

Below 2.64 a group has `policies` (a list of exactly one policy) and `metadata`; 2.13 adds
`project_id` and `user_id`; 2.15 allows the soft-* policies; from 2.64 a group has one
`policy` plus `rules` (only anti-affinity takes a rule: `max_server_per_host`), and no longer
`policies` or `metadata`. A group is visible to its project (and to admins); membership is
written by server create (the `group` scheduler hint) and removed when an instance is deleted.

Schemas in `schemas/server_groups.py`, views in `views/server_groups.py`, queries in
`mininova.store.server_groups`.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.compute.schemas import server_groups as schemas
from mininova.api.compute.views import server_groups as views
from mininova.api.compute.views.server_groups import GROUP_FIELDS
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest
from mininova.api.microversions import V2_64
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.errors import NotFound, QuotaExceeded
from mininova.store import server_groups as repo
from mininova.store.db import Row, Store
from mininova.timeutil import now_iso

# GROUP_FIELDS: tests/api/test_microversions.py imports it from here.
__all__ = ["GROUP_FIELDS", "POLICIES", "create", "find"]

POLICIES = schemas.POLICIES


# ------------------------------------------------------------------------ domain functions


async def create(
    store: Store,
    *,
    project_id: str,
    user_id: str,
    name: str,
    policy: str,
    rules: dict[str, Any],
) -> Row:
    """Create a server group within the project's server_groups quota; the new group.

    The quota check and the insert run in one transaction holding the project's quota
    lock, so parallel creates cannot overshoot the quota.
    """
    group_id = str(uuidlib.uuid4())
    async with store.transaction() as tx:
        await tx.lock(f"quota:{project_id}")
        limit = (await quota.get_limits(tx, project_id))["server_groups"]
        used = (await quota.compute_usage(tx, project_id))["server_groups"]
        if 0 <= limit < used + 1:
            raise QuotaExceeded("Quota exceeded, too many server groups.")
        await repo.insert(
            tx,
            group_id=group_id,
            name=name,
            project_id=project_id,
            user_id=user_id,
            policy=policy,
            rules=rules,
            created_at=now_iso(),
        )
    row = await repo.get(store, group_id)
    assert row is not None
    return row


async def find(store: Store, group_id: str, project_id: str, is_admin: bool) -> Row:
    """The group if the caller may see it; NotFound otherwise."""
    row = await repo.visible(store, group_id, project_id, is_admin)
    if row is None:
        raise NotFound(f"Instance group {group_id} could not be found.")
    return row


# ----------------------------------------------------------------------------- handlers


async def _view(request: web.Request, row: Row) -> dict[str, Any]:
    members = await repo.members(services(request).store, row["id"])
    return views.group(row, members, microversion(request))


async def _requested(request: web.Request) -> Row:
    ctx = context(request)
    group_id = request.match_info["group_id"]
    return await find(services(request).store, group_id, ctx.project_id, ctx.is_admin)


async def create_group(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await validated_body(request, schemas.create(microversion(request)))
    spec = body["server_group"]
    rules: dict[str, Any] = {}
    if mv_at_least(request, V2_64):
        policy = spec["policy"]
        if spec.get("rules"):
            if policy != "anti-affinity":
                raise BadRequest("Only anti-affinity policy supports rules.")
            rules = {"max_server_per_host": int(spec["rules"]["max_server_per_host"])}
    else:
        policy = spec["policies"][0]
    row = await create(
        services(request).store,
        project_id=ctx.project_id,
        user_id=ctx.user_id,
        name=spec["name"],
        policy=policy,
        rules=rules,
    )
    return json_response({"server_group": await _view(request, row)})


async def show_group(request: web.Request) -> web.Response:
    row = await _requested(request)
    return json_response({"server_group": await _view(request, row)})


async def delete_group(request: web.Request) -> web.Response:
    row = await _requested(request)
    await repo.delete_group(services(request).store, row["id"])
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


_TRUE = ("", "1", "true", "t", "yes", "y", "on")


async def list_groups(request: web.Request) -> web.Response:
    ctx = context(request)
    raw_all = request.query.get("all_projects")
    all_projects = raw_all is not None and raw_all.strip().lower() in _TRUE
    limit = _int_param(request, "limit", 0)
    offset = _int_param(request, "offset", 0) or 0
    store = services(request).store
    project = None if ctx.is_admin and all_projects else ctx.project_id
    rows = (await repo.list_groups(store, project))[offset:]
    if limit is not None:
        rows = rows[:limit]
    members = await repo.members_of(store, [r["id"] for r in rows])
    mv = microversion(request)
    return json_response({"server_groups": [views.group(r, members[r["id"]], mv) for r in rows]})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/os-server-groups"
    router.add_get(base, list_groups)
    router.add_post(base, create_group)
    router.add_get(base + "/{group_id}", show_group)
    router.add_delete(base + "/{group_id}", delete_group)
