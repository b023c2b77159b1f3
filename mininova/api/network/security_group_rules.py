"""Network API: security group rules (`/v2.0/security-group-rules`), checked and stored by
`mininova.network.security_groups` (Neutron's validation and error types)."""

from __future__ import annotations

from aiohttp import web

from mininova import quota
from mininova.api.context import context, services
from mininova.api.network import listing
from mininova.api.network.common import body_of
from mininova.api.network.errors import NeutronFault
from mininova.api.network.schemas import security_groups as schemas
from mininova.api.network.security_groups import sync, typed_errors
from mininova.api.network.views import security_groups as views
from mininova.api.responses import json_response
from mininova.network import security_groups as domain
from mininova.store import security_groups as repo


def _not_found(rule_id: str) -> NeutronFault:
    error = domain.rule_not_found(rule_id)
    return NeutronFault(error.kind, 404, error.message)


async def _default_ids(request: web.Request) -> set[str]:
    groups = await repo.list_groups(services(request).store, None)
    return {g["id"] for g in groups if g["is_default"]}


@typed_errors
async def list_rules(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.RULE_ATTRIBUTES)
    rows = await domain.visible_rules(svc.store, ctx)
    defaults = await _default_ids(request)
    items = [views.rule(r, defaults) for r in rows]
    return json_response(listing.select(request, items, query, "security_group_rules", _not_found))


@typed_errors
async def show_rule(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    row = await domain.find_rule(svc.store, ctx, request.match_info["rule_id"])
    view = views.rule(row, await _default_ids(request))
    return json_response({"security_group_rule": listing.only(view, listing.fields_of(request))})


@typed_errors
async def create_rule(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(
        request, "security_group_rule", schemas.RULE_ATTRIBUTES, schemas.CREATE_RULE
    )
    group = await domain.find_group(svc.store, ctx, given["security_group_id"])
    limits = await quota.get_limits(svc.store, group["project_id"])
    row, hosts = await domain.create_rule(
        svc.store, ctx, group["id"], given, limit=limits["security_group_rules"]
    )
    sync(request, hosts)
    view = views.rule(row, await _default_ids(request))
    return json_response({"security_group_rule": view}, status=201)


@typed_errors
async def delete_rule(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    hosts = await domain.delete_rule(svc.store, ctx, request.match_info["rule_id"])
    sync(request, hosts)
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/security-group-rules", list_rules)
    router.add_post(prefix + "/security-group-rules", create_rule)
    router.add_get(prefix + "/security-group-rules/{rule_id}", show_rule)
    router.add_delete(prefix + "/security-group-rules/{rule_id}", delete_rule)
