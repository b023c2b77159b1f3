"""Network API: security groups (`/v2.0/security-groups`), records of
`mininova.network.security_groups`; a project's `default` group is made on first use.

Schemas in `schemas/security_groups.py`, views in `views/security_groups.py`. A change that
alters what traffic a host must allow is cast to the conductor (`sync_network`).
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.context import context, services
from mininova.api.network import listing
from mininova.api.network.common import body_of, owner
from mininova.api.network.errors import Handler, NeutronFault, neutron_handler
from mininova.api.network.schemas import security_groups as schemas
from mininova.api.network.views import security_groups as views
from mininova.api.responses import json_response
from mininova.network import security_groups as domain
from mininova.store import security_groups as repo
from mininova.store.engine import Row


def typed_errors(fn: Handler) -> Handler:
    """Render the domain's typed security group errors as NeutronFaults."""

    @functools.wraps(fn)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except domain.GroupError as exc:
            raise NeutronFault(exc.kind, _status(exc), str(exc)) from None

    return neutron_handler(wrapper)


def _status(exc: Exception) -> int:
    if isinstance(exc, domain.TypedNotFound):
        return 404
    if isinstance(exc, domain.TypedConflict):
        return 409
    return 400


def sync(request: web.Request, hosts: list[str]) -> None:
    """Tell the conductor which hosts' traffic rules changed."""
    if hosts:
        services(request).conductor.sync_network(hosts)


async def default_ids(request: web.Request, groups: list[Row]) -> set[str]:
    return {g["id"] for g in groups if g["is_default"]}


async def render(request: web.Request, groups: list[Row]) -> list[dict[str, Any]]:
    """The group documents, each with its rules (one query for all)."""
    rules: dict[str, list[Row]] = {g["id"]: [] for g in groups}
    for rule in await repo.rules_of_groups(services(request).store, list(rules)):
        rules[rule["security_group_id"]].append(rule)
    defaults = await default_ids(request, groups)
    return [views.group(g, rules[g["id"]], defaults) for g in groups]


def _not_found(group_id: str) -> NeutronFault:
    error = domain.group_not_found(group_id)
    return NeutronFault(error.kind, 404, error.message)


@typed_errors
async def list_groups(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.GROUP_ATTRIBUTES)
    items = await render(request, await domain.visible_groups(svc.store, ctx))
    return json_response(listing.select(request, items, query, "security_groups", _not_found))


@typed_errors
async def show_group(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    row = await domain.find_group(svc.store, ctx, request.match_info["group_id"])
    (view,) = await render(request, [row])
    return json_response({"security_group": listing.only(view, listing.fields_of(request))})


@typed_errors
async def create_group(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(request, "security_group", schemas.GROUP_ATTRIBUTES, schemas.CREATE_GROUP)
    project_id = owner(ctx.project_id, given, ctx.is_admin)
    limits = await quota.get_limits(svc.store, project_id)
    row = await domain.create_group(
        svc.store,
        ctx,
        project_id,
        given.get("name", ""),
        given.get("description", ""),
        stateful=given.get("stateful", True),
        limit=limits["security_groups"],
    )
    (view,) = await render(request, [row])
    return json_response({"security_group": view}, status=201)


@typed_errors
async def update_group(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(
        request, "security_group", schemas.GROUP_UPDATE_ATTRIBUTES, schemas.UPDATE_GROUP
    )
    row = await domain.update_group(svc.store, ctx, request.match_info["group_id"], given)
    (view,) = await render(request, [row])
    return json_response({"security_group": view})


@typed_errors
async def delete_group(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    hosts = await domain.delete_group(svc.store, ctx, request.match_info["group_id"])
    sync(request, hosts)
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/security-groups", list_groups)
    router.add_post(prefix + "/security-groups", create_group)
    router.add_get(prefix + "/security-groups/{group_id}", show_group)
    router.add_put(prefix + "/security-groups/{group_id}", update_group)
    router.add_delete(prefix + "/security-groups/{group_id}", delete_group)


async def quota_usage(request: web.Request, project_id: str) -> dict[str, tuple[int, int]]:
    """(limit, used) of `security_group` and `security_group_rule` for a project."""
    store = services(request).store
    limits = await quota.get_limits(store, project_id)
    return {
        "security_group": (limits["security_groups"], await repo.count_groups(store, project_id)),
        "security_group_rule": (
            limits["security_group_rules"],
            await repo.count_rules(store, project_id),
        ),
    }
