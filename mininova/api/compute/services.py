"""Compute API: os-services (the controller's conductor and scheduler, one nova-compute per host).

Records and changes in `compute_hosts`, schemas in `schemas/services.py`, views in
`views/services.py`. From 2.53 a service is named by uuid and updated with one PUT body;
before, by int id and with the `enable`/`disable`/`disable-log-reason`/`force-down` (2.11)
actions naming host and binary.
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute import compute_hosts
from mininova.api.compute.schemas import services as schemas
from mininova.api.compute.views import services as views
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.microversions import V2_11, V2_53
from mininova.api.responses import json_response
from mininova.api.validation import validated_body


async def list_services(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-services:list")
    svc = services(request)
    records = await compute_hosts.list_services(
        svc.store, svc.config, request.query.get("host"), request.query.get("binary")
    )
    version = microversion(request)
    return json_response({"services": [views.service(r, version) for r in records]})


async def update_service(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-services:update")
    service_id = request.match_info["service_id"]
    if not mv_at_least(request, V2_53):
        return await _legacy_service_action(request, service_id)
    body = await validated_body(request, schemas.UPDATE)
    svc = services(request)
    record = await compute_hosts.find_service(svc.store, svc.config, service_id, by_uuid=True)
    if "status" not in body and "forced_down" not in body:
        raise BadRequest(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified."
        )
    if "disabled_reason" in body and body.get("status") != "disabled":
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
    compute_hosts.require_compute(record)
    await compute_hosts.update_compute_service(
        svc.store,
        record["host"],
        disabled=body["status"] == "disabled" if "status" in body else None,
        disabled_reason=body.get("disabled_reason"),
        forced_down=body.get("forced_down"),
    )
    record = await compute_hosts.find_service(svc.store, svc.config, service_id, by_uuid=True)
    return json_response({"service": views.service(record, microversion(request))})


async def _legacy_service_action(request: web.Request, action: str) -> web.Response:
    if action == "force-down" and not mv_at_least(request, V2_11):
        raise NotFound(f"Unknown action {action}")
    schema = schemas.LEGACY_ACTIONS.get(action)
    if schema is None:
        raise NotFound(f"Unknown action {action}")
    body = await validated_body(request, schema)
    svc = services(request)
    record = await compute_hosts.find_legacy_service(
        svc.store, svc.config, body["host"], body["binary"]
    )
    if action == "force-down":
        await compute_hosts.update_compute_service(
            svc.store, record["host"], forced_down=body["forced_down"]
        )
    else:
        await compute_hosts.update_compute_service(
            svc.store,
            record["host"],
            disabled=action != "enable",
            disabled_reason=body["disabled_reason"] if action == "disable-log-reason" else None,
        )
    return json_response(
        {"service": views.legacy_action(body["host"], body["binary"], action, body)}
    )


async def delete_service(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-services:delete")
    svc = services(request)
    record = await compute_hosts.find_service(
        svc.store, svc.config, request.match_info["service_id"], by_uuid=mv_at_least(request, V2_53)
    )
    compute_hosts.require_compute(record, "Deleting")
    await compute_hosts.delete_compute_service(svc.store, svc.hub, record["host"])
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-services", list_services)
    router.add_put(prefix + "/os-services/{service_id}", update_service)
    router.add_delete(prefix + "/os-services/{service_id}", delete_service)
