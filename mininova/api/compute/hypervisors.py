"""Compute API: os-hypervisors (one hypervisor per compute node).

Records in `compute_hosts`, views in `views/hypervisors.py`. 2.33 pages the lists, 2.53 names
hypervisors by uuid and replaces `/{pattern}/search` and `/{pattern}/servers` with the
`hypervisor_hostname_pattern` and `with_servers` parameters; 2.88 drops `/statistics` and
`/{id}/uptime` (uptime moves into the hypervisor). Each request costs a constant number of
queries, whatever the number of hosts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.compute import compute_hosts
from mininova.api.compute.views import hypervisors as views
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.microversions import V2_33, V2_53, V2_88
from mininova.api.pagination import next_query, paginate
from mininova.api.responses import json_response


def _bool_param(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}.")


def _with_servers(request: web.Request) -> bool:
    if mv_at_least(request, V2_53) and "with_servers" in request.query:
        return _bool_param(request.query["with_servers"], "with_servers")
    return False


async def _list_hypervisors(request: web.Request, detail: bool) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:list")
    q = request.query
    svc = services(request)
    with_servers = _with_servers(request)
    pattern = q.get("hypervisor_hostname_pattern") if mv_at_least(request, V2_53) else None
    if pattern is not None and ("limit" in q or "marker" in q):
        raise BadRequest(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is "
            "not supported."
        )
    nodes = await compute_hosts.nodes(svc.store, pattern)
    limit: int | None = None
    if mv_at_least(request, V2_33):
        use_uuid = mv_at_least(request, V2_53)
        nodes, limit = paginate(
            nodes,
            q,
            lambda n: compute_hosts.hypervisor_uuid(n["host"]) if use_uuid else str(n["id"]),
        )
    found = await compute_hosts.hypervisors(
        svc.store,
        svc.config,
        nodes,
        with_usage=detail and not mv_at_least(request, V2_88),
        with_servers=with_servers,
    )
    version = microversion(request)
    hyps = [views.hypervisor(h, version, detail=detail, with_servers=with_servers) for h in found]
    body: dict[str, Any] = {"hypervisors": hyps}
    if limit is not None and hyps and len(hyps) >= limit:
        path = "os-hypervisors/detail" if detail else "os-hypervisors"
        query = next_query(q, str(hyps[-1]["id"]))
        body["hypervisors_links"] = [
            {"rel": "next", "href": svc.url(f"/compute/v2.1/{path}?{query}")}
        ]
    return json_response(body)


async def list_hypervisors(request: web.Request) -> web.Response:
    return await _list_hypervisors(request, detail=False)


async def list_hypervisors_detail(request: web.Request) -> web.Response:
    return await _list_hypervisors(request, detail=True)


async def _one(request: web.Request, *, with_usage: bool, with_servers: bool = False):
    svc = services(request)
    node = await compute_hosts.find_node(
        svc.store, request.match_info["hypervisor_id"], by_uuid=mv_at_least(request, V2_53)
    )
    found = await compute_hosts.hypervisors(
        svc.store, svc.config, [node], with_usage=with_usage, with_servers=with_servers
    )
    return found[0]


async def show_hypervisor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:show")
    with_servers = _with_servers(request)
    hyp = await _one(request, with_usage=not mv_at_least(request, V2_88), with_servers=with_servers)
    view = views.hypervisor(hyp, microversion(request), detail=True, with_servers=with_servers)
    return json_response({"hypervisor": view})


async def hypervisor_uptime(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:uptime")
    if mv_at_least(request, V2_88):
        raise NotFound("The resource could not be found.")
    hyp = await _one(request, with_usage=False)
    if not hyp.up:
        raise BadRequest("Compute service of host is unavailable at this time.")
    return json_response({"hypervisor": views.uptime_view(hyp, microversion(request))})


async def hypervisor_statistics(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:statistics")
    if mv_at_least(request, V2_88):
        raise NotFound("The resource could not be found.")
    stats = await compute_hosts.statistics(services(request).store)
    return json_response({"hypervisor_statistics": stats})


async def _matching(request: web.Request, *, with_servers: bool) -> list[dict[str, Any]]:
    """The pre-2.53 `/{pattern}/search` and `/{pattern}/servers`."""
    if mv_at_least(request, V2_53):
        raise NotFound("The resource could not be found.")
    svc = services(request)
    nodes = await compute_hosts.nodes(svc.store, request.match_info["pattern"])
    found = await compute_hosts.hypervisors(
        svc.store, svc.config, nodes, with_usage=False, with_servers=with_servers
    )
    version = microversion(request)
    return [views.hypervisor(h, version, detail=False) for h in found]


async def search_hypervisors(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:search")
    return json_response({"hypervisors": await _matching(request, with_servers=False)})


async def hypervisor_servers(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:servers")
    return json_response({"hypervisors": await _matching(request, with_servers=True)})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    base = prefix + "/os-hypervisors"
    router.add_get(base, list_hypervisors)
    router.add_get(base + "/detail", list_hypervisors_detail)
    router.add_get(base + "/statistics", hypervisor_statistics)
    router.add_get(base + "/{hypervisor_id}/uptime", hypervisor_uptime)
    router.add_get(base + "/{pattern}/search", search_hypervisors)
    router.add_get(base + "/{pattern}/servers", hypervisor_servers)
    router.add_get(base + "/{hypervisor_id}", show_hypervisor)
