"""Compute API: /limits, /os-quota-sets and /os-quota-class-sets, backed by mininova.quota."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.compute.schemas import quota_classes as class_schemas
from mininova.api.compute.schemas import quota_sets as schemas
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import Forbidden
from mininova.api.microversions import V2_36, V2_39, V2_57
from mininova.api.responses import json_response
from mininova.api.validation import validated_body

# absolute limit key → quota resource
_MAX_KEYS = {
    "maxImageMeta": "metadata_items",
    "maxPersonality": "injected_files",
    "maxPersonalitySize": "injected_file_content_bytes",
    "maxSecurityGroupRules": "security_group_rules",
    "maxSecurityGroups": "security_groups",
    "maxServerGroupMembers": "server_group_members",
    "maxServerGroups": "server_groups",
    "maxServerMeta": "metadata_items",
    "maxTotalCores": "cores",
    "maxTotalFloatingIps": "floating_ips",
    "maxTotalInstances": "instances",
    "maxTotalKeypairs": "key_pairs",
    "maxTotalRAMSize": "ram",
}
_USED_KEYS = {
    "totalCoresUsed": "cores",
    "totalFloatingIpsUsed": "floating_ips",
    "totalInstancesUsed": "instances",
    "totalRAMUsed": "ram",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}
_DROPPED_2_36 = (
    "maxSecurityGroupRules",
    "maxSecurityGroups",
    "maxTotalFloatingIps",
    "totalFloatingIpsUsed",
    "totalSecurityGroupsUsed",
)
_DROPPED_2_39 = ("maxImageMeta",)
_DROPPED_2_57 = ("maxPersonality", "maxPersonalitySize")


def quota_resources(request: web.Request) -> list[str]:
    """The quota_set keys of this microversion (without `id`)."""
    return schemas.resources_for(microversion(request))


async def show_limits(request: web.Request) -> web.Response:
    ctx = context(request)
    project_id = request.query.get("tenant_id") or ctx.project_id
    if project_id != ctx.project_id and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:limits:other_project to be performed.")
    store = services(request).store
    limits = await quota.get_limits(store, project_id)
    usage = await quota.get_usage(store, project_id, ctx.user_id)
    absolute: dict[str, int] = {k: limits[r] for k, r in _MAX_KEYS.items()}
    absolute.update({k: usage[r] for k, r in _USED_KEYS.items()})
    dropped: list[str] = []
    if mv_at_least(request, V2_36):
        dropped += _DROPPED_2_36
    if mv_at_least(request, V2_39):
        dropped += _DROPPED_2_39
    if mv_at_least(request, V2_57):
        dropped += _DROPPED_2_57
    for key in dropped:
        absolute.pop(key, None)
    return json_response({"limits": {"absolute": absolute, "rate": []}})


def _check_project(request: web.Request, project_id: str) -> None:
    ctx = context(request)
    if project_id != ctx.project_id and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")


async def show_quota_set(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    _check_project(request, project_id)
    limits = await quota.get_limits(services(request).store, project_id)
    body: dict[str, Any] = {"id": project_id}
    body.update({k: limits[k] for k in quota_resources(request)})
    return json_response({"quota_set": body})


async def show_quota_detail(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    _check_project(request, project_id)
    store = services(request).store
    limits = await quota.get_limits(store, project_id)
    user_id = request.query.get("user_id") or context(request).user_id
    usage = await quota.get_usage(store, project_id, user_id)
    body: dict[str, Any] = {"id": project_id}
    for key in quota_resources(request):
        body[key] = {"in_use": usage[key], "limit": limits[key], "reserved": 0}
    return json_response({"quota_set": body})


async def show_quota_defaults(request: web.Request) -> web.Response:
    project_id = request.match_info["project_id"]
    defaults = await quota.class_limits(services(request).store)
    body: dict[str, Any] = {"id": project_id}
    body.update({k: defaults[k] for k in quota_resources(request)})
    return json_response({"quota_set": body})


# -- os-quota-class-sets (as Nova: only the `default` class changes anything) ---------------


async def show_quota_class_set(request: web.Request) -> web.Response:
    """GET /os-quota-class-sets/{class} (admin, as Nova's policy): the class's limits."""
    context(request).require_admin("os_compute_api:os-quota-class-sets:show")
    class_name = request.match_info["class_name"]
    limits = await quota.class_limits(services(request).store, class_name)
    body: dict[str, Any] = {"id": class_name}
    body.update({k: limits[k] for k in class_schemas.resources_for(microversion(request))})
    return json_response({"quota_class_set": body})


async def update_quota_class_set(request: web.Request) -> web.Response:
    """PUT /os-quota-class-sets/{class} (admin): store the class's limits; with `default`,
    the defaults of every project without its own override change."""
    context(request).require_admin("os_compute_api:os-quota-class-sets:update")
    mv = microversion(request)
    body = await validated_body(request, class_schemas.update_for(mv))
    updates = {k: int(v) for k, v in body["quota_class_set"].items() if k != "networks"}
    limits = await quota.update_class_limits(
        services(request).store, request.match_info["class_name"], updates
    )
    shown = {k: limits[k] for k in class_schemas.resources_for(mv)}
    return json_response({"quota_class_set": shown})


async def update_quota_set(request: web.Request) -> web.Response:
    ctx = context(request)
    ctx.require_admin("os_compute_api:os-quota-sets:update")
    project_id = request.match_info["project_id"]
    body = await validated_body(request, schemas.update_for(microversion(request)))
    spec = dict(body["quota_set"])
    force = str(spec.pop("force", False)).strip().lower() in ("1", "true", "t", "yes", "y", "on")
    store = services(request).store
    user_id = request.query.get("user_id") or ctx.user_id
    updates = {key: int(raw) for key, raw in spec.items()}
    limits = await quota.update_limits(store, project_id, updates, force=force, user_id=user_id)
    return json_response({"quota_set": {k: limits[k] for k in quota_resources(request)}})


async def delete_quota_set(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-quota-sets:delete")
    await quota.reset_limits(services(request).store, request.match_info["project_id"])
    return web.Response(status=202)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/limits", show_limits)
    base = prefix + "/os-quota-sets/{project_id}"
    router.add_get(base + "/defaults", show_quota_defaults)
    router.add_get(base + "/detail", show_quota_detail)
    router.add_get(base, show_quota_set)
    router.add_put(base, update_quota_set)
    router.add_delete(base, delete_quota_set)
    classes = prefix + "/os-quota-class-sets/{class_name}"
    router.add_get(classes, show_quota_class_set)
    router.add_put(classes, update_quota_class_set)
