"""Network API: quotas, read-only (what `openstack quota show` asks the network service).

Nothing limits networks, subnets or ports here (they are not made by projects), so their
limit is -1 (unlimited); `floatingip` is the project's `floating_ips` quota (mininova.quota).
`details` counts what the project owns.
"""

from __future__ import annotations

from aiohttp import web

from mininova import quota
from mininova.api.context import context, services
from mininova.api.network import floatingips, model, security_groups
from mininova.api.network.errors import neutron_handler, policy_denied
from mininova.api.responses import json_response

RESOURCES = (
    "network",
    "subnet",
    "port",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "rbac_policy",
    "subnetpool",
)


def _project(request: web.Request) -> str:
    ctx = context(request)
    project_id = request.match_info["project_id"]
    if project_id != ctx.project_id and not ctx.is_admin:
        raise policy_denied("rule:get_quota")
    return project_id


@neutron_handler
async def list_quotas(request: web.Request) -> web.Response:
    """Projects with non-default quotas: none."""
    if not context(request).is_admin:
        raise policy_denied("rule:get_quota")
    return json_response({"quotas": []})


@neutron_handler
async def show_quota(request: web.Request) -> web.Response:
    project_id = _project(request)
    body = dict.fromkeys(RESOURCES, -1)
    body["floatingip"], _ = await floatingips.quota_usage(request, project_id)
    for name, (limit, _) in (await security_groups.quota_usage(request, project_id)).items():
        body[name] = limit
    return json_response({"quota": body})


@neutron_handler
async def default_quota(request: web.Request) -> web.Response:
    _project(request)
    body = dict.fromkeys(RESOURCES, -1)
    body["floatingip"] = quota.DEFAULTS["floating_ips"]
    body["security_group"] = quota.DEFAULTS["security_groups"]
    body["security_group_rule"] = quota.DEFAULTS["security_group_rules"]
    return json_response({"quota": body})


@neutron_handler
async def quota_details(request: web.Request) -> web.Response:
    project_id = _project(request)
    svc, ctx = services(request), context(request)
    used = dict.fromkeys(RESOURCES, 0)
    used["network"] = sum(
        n["project_id"] == project_id for n in await model.visible_networks(svc.store, ctx)
    )
    used["subnet"] = sum(
        s["project_id"] == project_id for s in await model.visible_subnets(svc.store, ctx)
    )
    used["port"] = sum(
        p["project_id"] == project_id for p in await model.visible_ports(svc.store, ctx)
    )
    body = {name: {"limit": -1, "used": used[name], "reserved": 0} for name in RESOURCES}
    limit, in_use = await floatingips.quota_usage(request, project_id)
    body["floatingip"] = {"limit": limit, "used": in_use, "reserved": 0}
    for name, (limit, in_use) in (await security_groups.quota_usage(request, project_id)).items():
        body[name] = {"limit": limit, "used": in_use, "reserved": 0}
    return json_response({"quota": body})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/quotas", list_quotas)
    router.add_get(prefix + "/quotas/{project_id}", show_quota)
    router.add_get(prefix + "/quotas/{project_id}/default", default_quota)
    router.add_get(prefix + "/quotas/{project_id}/details", quota_details)
    router.add_get(prefix + "/quotas/{project_id}/details.json", quota_details)
