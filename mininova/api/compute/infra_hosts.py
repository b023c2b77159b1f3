"""Compute API: os-services, os-hypervisors and os-availability-zone.

One `nova-compute` service and one hypervisor per `compute_nodes` row; the controller
itself contributes `nova-conductor` and `nova-scheduler` (zone "internal", always up).
Service ids: conductor 1, scheduler 2, compute node n → n + 2 (ints below 2.53, stable
uuid5 values from 2.53). Hypervisor ids: the compute node id, or a uuid5 of its host.
"""

from __future__ import annotations

import re
import socket
import uuid
from typing import Any

from aiohttp import web

from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Conflict, NotFound
from mininova.api.microversions import (
    V2_11,
    V2_28,
    V2_33,
    V2_53,
    V2_75,
    V2_88,
    Field,
    render_fields,
)
from mininova.api.pagination import next_query, paginate
from mininova.api.validation import validated_body
from mininova.hosts import is_up
from mininova.store.db import Row, loads
from mininova.timeutil import nova_usec_time, now_iso, now_utc, parse_iso
from mininova.trust import enrolment

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "mininova")
INTERNAL_ZONE = "internal"
_CONTROLLER_BINARIES = ("nova-conductor", "nova-scheduler")
_UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}$"
)


def controller_host(request: web.Request) -> str:
    cfg = services(request).config
    return str(cfg.extra.get("host") or socket.gethostname())


def service_uuid(host: str, binary: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"service:{host}:{binary}"))


def hypervisor_uuid(host: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"hypervisor:{host}"))


def _forced_key(host: str) -> str:
    return f"service_forced_down:{host}"


async def _forced_down(request: web.Request, host: str) -> bool:
    return (await services(request).store.get_setting(_forced_key(host))) == "1"


async def _nodes(request: web.Request) -> list[Row]:
    return await services(request).store.fetchall("SELECT * FROM compute_nodes ORDER BY id")


async def _node_up(request: web.Request, node: Row) -> bool:
    if await _forced_down(request, node["host"]):
        return False
    return is_up(node, services(request).config)


# ----------------------------------------------------------------- os-services


async def _service_rows(request: web.Request) -> list[dict[str, Any]]:
    """Internal service records: dicts with id, uuid, binary, host, zone, disabled, ..."""
    host = controller_host(request)
    now = now_iso()
    rows: list[dict[str, Any]] = []
    for number, binary in enumerate(_CONTROLLER_BINARIES, start=1):
        rows.append(
            {
                "id": number,
                "uuid": service_uuid(host, binary),
                "binary": binary,
                "host": host,
                "zone": INTERNAL_ZONE,
                "disabled": False,
                "disabled_reason": None,
                "up": True,
                "forced_down": False,
                "updated_at": now,
                "node": None,
            }
        )
    for node in await _nodes(request):
        forced = await _forced_down(request, node["host"])
        rows.append(
            {
                "id": int(node["id"]) + 2,
                "uuid": service_uuid(node["host"], "nova-compute"),
                "binary": "nova-compute",
                "host": node["host"],
                "zone": node["zone"],
                "disabled": bool(node["disabled"]),
                "disabled_reason": node["disabled_reason"],
                "up": (not forced) and is_up(node, services(request).config),
                "forced_down": forced,
                "updated_at": node["last_heartbeat"] or node["updated_at"] or node["created_at"],
                "node": node,
            }
        )
    return rows


# The os-services view, in response order; `id` is an int below 2.53 and a uuid from 2.53.
SERVICE_FIELDS: tuple[Field[dict[str, Any]], ...] = (
    Field("id", lambda s: s["id"], until=V2_53),
    Field("id", lambda s: s["uuid"], since=V2_53),
    Field("binary", lambda s: s["binary"]),
    Field("host", lambda s: s["host"]),
    Field("zone", lambda s: s["zone"]),
    Field("status", lambda s: "disabled" if s["disabled"] else "enabled"),
    Field("state", lambda s: "up" if s["up"] else "down"),
    Field("updated_at", lambda s: nova_usec_time(s["updated_at"])),
    Field("disabled_reason", lambda s: s["disabled_reason"]),
    Field("forced_down", lambda s: s["forced_down"], since=V2_11),
)


def _service_view(request: web.Request, svc: dict[str, Any]) -> dict[str, Any]:
    return render_fields(SERVICE_FIELDS, microversion(request), svc)


async def list_services(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-services:list")
    rows = await _service_rows(request)
    host = request.query.get("host")
    binary = request.query.get("binary")
    if host is not None:
        rows = [r for r in rows if r["host"] == host]
    if binary is not None:
        rows = [r for r in rows if r["binary"] == binary]
    return web.json_response({"services": [_service_view(request, r) for r in rows]})


async def _find_service(request: web.Request, service_id: str) -> dict[str, Any]:
    rows = await _service_rows(request)
    if mv_at_least(request, V2_53):
        if not _UUID_RE.match(service_id):
            raise BadRequest(f"Invalid uuid {service_id}")
        match = [r for r in rows if r["uuid"] == str(uuid.UUID(service_id))]
    else:
        try:
            number = int(service_id)
        except ValueError:
            raise BadRequest(f"Invalid ID {service_id}") from None
        match = [r for r in rows if r["id"] == number]
    if not match:
        raise NotFound(f"Service {service_id} could not be found.")
    return match[0]


async def _set_disabled(
    request: web.Request, host: str, disabled: bool, reason: str | None
) -> None:
    await services(request).store.execute(
        "UPDATE compute_nodes SET disabled = ?, disabled_reason = ?, updated_at = ? WHERE host = ?",
        (int(disabled), reason if disabled else None, now_iso(), host),
    )


async def _set_forced_down(request: web.Request, host: str, forced: bool) -> None:
    await services(request).store.set_setting(_forced_key(host), "1" if forced else "0")


async def update_service(request: web.Request) -> web.Response:
    ctx = context(request)
    ctx.require_admin("os_compute_api:os-services:update")
    service_id = request.match_info["service_id"]
    if not mv_at_least(request, V2_53):
        return await _legacy_service_action(request, service_id)
    body = await validated_body(
        request,
        {
            "type": "object",
            "properties": {
                "status": {"type": "string", "enum": ["enabled", "disabled"]},
                "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
                "forced_down": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
    )
    svc = await _find_service(request, service_id)
    if "status" not in body and "forced_down" not in body:
        raise BadRequest(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified."
        )
    if "disabled_reason" in body and body.get("status") != "disabled":
        raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
    if svc["binary"] != "nova-compute":
        raise BadRequest(
            f"Updating a {svc['binary']} service is not supported. Only "
            "nova-compute services can be updated."
        )
    if "status" in body:
        disabled = body["status"] == "disabled"
        await _set_disabled(request, svc["host"], disabled, body.get("disabled_reason"))
    if "forced_down" in body:
        await _set_forced_down(request, svc["host"], body["forced_down"])
    svc = await _find_service(request, service_id)
    return web.json_response({"service": _service_view(request, svc)})


async def _legacy_service_action(request: web.Request, action: str) -> web.Response:
    actions = ["enable", "disable", "disable-log-reason"]
    if mv_at_least(request, V2_11):
        actions.append("force-down")
    if action not in actions:
        raise NotFound(f"Unknown action {action}")
    props: dict[str, Any] = {
        "host": {"type": "string", "minLength": 1, "maxLength": 255},
        "binary": {"type": "string", "minLength": 1, "maxLength": 255},
    }
    required = ["host", "binary"]
    if action == "disable-log-reason":
        props["disabled_reason"] = {"type": "string", "minLength": 1, "maxLength": 255}
        required.append("disabled_reason")
    if action == "force-down":
        props["forced_down"] = {"type": "boolean"}
        required.append("forced_down")
    body = await validated_body(
        request, {"type": "object", "properties": props, "required": required}
    )
    host, binary = body["host"], body["binary"]
    rows = [r for r in await _service_rows(request) if r["host"] == host and r["binary"] == binary]
    if not rows:
        raise NotFound(f"Service {binary} on host {host} could not be found.")
    if binary != "nova-compute":
        raise BadRequest(
            f"Updating a {binary} service is not supported. Only nova-compute "
            "services can be updated."
        )
    result: dict[str, Any] = {"host": host, "binary": binary}
    if action == "enable":
        await _set_disabled(request, host, False, None)
        result["status"] = "enabled"
    elif action == "disable":
        await _set_disabled(request, host, True, None)
        result["status"] = "disabled"
    elif action == "disable-log-reason":
        await _set_disabled(request, host, True, body["disabled_reason"])
        result["status"] = "disabled"
        result["disabled_reason"] = body["disabled_reason"]
    else:
        await _set_forced_down(request, host, body["forced_down"])
        result["forced_down"] = body["forced_down"]
    return web.json_response({"service": result})


async def delete_service(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-services:delete")
    svc = await _find_service(request, request.match_info["service_id"])
    if svc["binary"] != "nova-compute":
        raise BadRequest(f"Deleting a {svc['binary']} service is not supported.")
    store = services(request).store
    busy = await store.fetchone(
        "SELECT COUNT(*) AS n FROM instances WHERE host = ? AND deleted = 0", (svc["host"],)
    )
    if busy and busy["n"]:
        raise Conflict(
            f"Unable to delete compute service that is hosting instances. "
            f"Migrate or delete the instances first. ({busy['n']} instances)"
        )
    hub = services(request).hub
    if hub is not None:  # the host must enrol again with a new join token
        await hub.revoke_host(svc["host"])
    else:
        await enrolment.revoke_host(store, svc["host"])
    await store.execute("DELETE FROM compute_nodes WHERE host = ?", (svc["host"],))
    await store.execute("DELETE FROM settings WHERE key = ?", (_forced_key(svc["host"]),))
    return web.Response(status=204)


# ----------------------------------------------------------------- os-hypervisors


async def _usage(request: web.Request, host: str) -> dict[str, int]:
    store = services(request).store
    alloc = (
        await store.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(vcpus), 0) AS vcpus,"
            " COALESCE(SUM(memory_mb), 0) AS ram, COALESCE(SUM(disk_gb), 0) AS disk"
            " FROM allocations WHERE host = ?",
            (host,),
        )
        or {}
    )
    busy = (
        await store.fetchone(
            "SELECT COUNT(*) AS n FROM instances WHERE host = ? AND deleted = 0"
            " AND task_state IS NOT NULL",
            (host,),
        )
        or {}
    )
    return {
        "running_vms": int(alloc.get("n") or 0),
        "vcpus_used": int(alloc.get("vcpus") or 0),
        "memory_mb_used": int(alloc.get("ram") or 0),
        "local_gb_used": int(alloc.get("disk") or 0),
        "current_workload": int(busy.get("n") or 0),
    }


async def _servers_on(request: web.Request, host: str) -> list[dict[str, str]]:
    rows = await services(request).store.fetchall(
        "SELECT id, uuid FROM instances WHERE host = ? AND deleted = 0 ORDER BY id", (host,)
    )
    return [{"name": f"instance-{int(r['id']):08x}", "uuid": r["uuid"]} for r in rows]


def _uptime(node: Row, up: bool) -> str | None:
    if not up:
        return None
    since = parse_iso(node.get("created_at") or now_iso())
    seconds = max(0, int((now_utc() - since).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, (rest % 3600) // 60
    clock = now_utc().strftime("%H:%M:%S")
    return (
        f" {clock} up {days} days, {hours:2d}:{minutes:02d},  0 users,  "
        "load average: 0.00, 0.00, 0.00"
    )


async def _hypervisor_view(
    request: web.Request,
    node: Row,
    detail: bool,
    with_servers: bool = False,
    servers: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    uuids = mv_at_least(request, V2_53)
    up = await _node_up(request, node)
    view: dict[str, Any] = {
        "id": hypervisor_uuid(node["host"]) if uuids else int(node["id"]),
        "hypervisor_hostname": node["hypervisor_hostname"],
        "state": "up" if up else "down",
        "status": "disabled" if node["disabled"] else "enabled",
    }
    if detail:
        view["hypervisor_type"] = node["hypervisor_type"]
        view["hypervisor_version"] = int(node["hypervisor_version"])
        view["host_ip"] = node["host_ip"]
        view["service"] = {
            "id": service_uuid(node["host"], "nova-compute") if uuids else int(node["id"]) + 2,
            "host": node["host"],
            "disabled_reason": node["disabled_reason"],
        }
        if not mv_at_least(request, V2_88):
            usage = await _usage(request, node["host"])
            vcpus, ram, disk = int(node["vcpus"]), int(node["memory_mb"]), int(node["local_gb"])
            view.update(
                {
                    "vcpus": vcpus,
                    "memory_mb": ram,
                    "local_gb": disk,
                    "vcpus_used": usage["vcpus_used"],
                    "memory_mb_used": usage["memory_mb_used"],
                    "local_gb_used": usage["local_gb_used"],
                    "free_ram_mb": ram - usage["memory_mb_used"],
                    "free_disk_gb": disk - usage["local_gb_used"],
                    "current_workload": usage["current_workload"],
                    "running_vms": usage["running_vms"],
                    "disk_available_least": disk - usage["local_gb_used"],
                }
            )
            if mv_at_least(request, V2_28):
                view["cpu_info"] = loads(node["cpu_info"], {}) or {}
            else:
                view["cpu_info"] = node["cpu_info"]
        else:
            view["uptime"] = _uptime(node, up)
    if with_servers and servers is None:
        servers = await _servers_on(request, node["host"])
    if servers:
        view["servers"] = servers
    elif with_servers and mv_at_least(request, V2_75):
        view["servers"] = []
    return view


def _bool_param(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}.")


async def _list_hypervisors(request: web.Request, detail: bool) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:list")
    q = request.query
    nodes = await _nodes(request)
    with_servers = False
    if mv_at_least(request, V2_53):
        if "with_servers" in q:
            with_servers = _bool_param(q["with_servers"], "with_servers")
        pattern = q.get("hypervisor_hostname_pattern")
        if pattern is not None:
            if "limit" in q or "marker" in q:
                raise BadRequest(
                    "Paging over hypervisors with the "
                    "hypervisor_hostname_pattern query parameter is not "
                    "supported."
                )
            nodes = [n for n in nodes if pattern.lower() in n["hypervisor_hostname"].lower()]
            if not nodes:
                raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    limit: int | None = None
    if mv_at_least(request, V2_33):
        use_uuid = mv_at_least(request, V2_53)
        nodes, limit = paginate(
            nodes, q, lambda n: hypervisor_uuid(n["host"]) if use_uuid else str(n["id"])
        )
    views = [await _hypervisor_view(request, n, detail, with_servers) for n in nodes]
    body: dict[str, Any] = {"hypervisors": views}
    if limit is not None and views and len(views) >= limit:
        path = "os-hypervisors/detail" if detail else "os-hypervisors"
        query = next_query(q, str(views[-1]["id"]))
        body["hypervisors_links"] = [
            {"rel": "next", "href": services(request).url(f"/compute/v2.1/{path}?{query}")}
        ]
    return web.json_response(body)


async def list_hypervisors(request: web.Request) -> web.Response:
    return await _list_hypervisors(request, detail=False)


async def list_hypervisors_detail(request: web.Request) -> web.Response:
    return await _list_hypervisors(request, detail=True)


async def _find_node(request: web.Request, hypervisor_id: str) -> Row:
    nodes = await _nodes(request)
    if mv_at_least(request, V2_53):
        if not _UUID_RE.match(hypervisor_id):
            raise BadRequest(f"Invalid uuid {hypervisor_id}")
        wanted = str(uuid.UUID(hypervisor_id))
        match = [n for n in nodes if hypervisor_uuid(n["host"]) == wanted]
    else:
        match = [n for n in nodes if str(n["id"]) == hypervisor_id]
    if not match:
        raise NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    return match[0]


async def show_hypervisor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:show")
    with_servers = False
    if mv_at_least(request, V2_53) and "with_servers" in request.query:
        with_servers = _bool_param(request.query["with_servers"], "with_servers")
    node = await _find_node(request, request.match_info["hypervisor_id"])
    view = await _hypervisor_view(request, node, True, with_servers)
    return web.json_response({"hypervisor": view})


async def hypervisor_uptime(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:uptime")
    if mv_at_least(request, V2_88):
        raise NotFound("The resource could not be found.")
    node = await _find_node(request, request.match_info["hypervisor_id"])
    view = await _hypervisor_view(request, node, False)
    up = view["state"] == "up"
    if not up:
        raise BadRequest("Compute service of host is unavailable at this time.")
    view["uptime"] = _uptime(node, up)
    return web.json_response({"hypervisor": view})


async def hypervisor_statistics(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:statistics")
    if mv_at_least(request, V2_88):
        raise NotFound("The resource could not be found.")
    stats = dict.fromkeys(
        (
            "count",
            "vcpus",
            "memory_mb",
            "local_gb",
            "vcpus_used",
            "memory_mb_used",
            "local_gb_used",
            "free_ram_mb",
            "free_disk_gb",
            "current_workload",
            "running_vms",
            "disk_available_least",
        ),
        0,
    )
    for node in await _nodes(request):
        usage = await _usage(request, node["host"])
        stats["count"] += 1
        stats["vcpus"] += int(node["vcpus"])
        stats["memory_mb"] += int(node["memory_mb"])
        stats["local_gb"] += int(node["local_gb"])
        for key in (
            "vcpus_used",
            "memory_mb_used",
            "local_gb_used",
            "current_workload",
            "running_vms",
        ):
            stats[key] += usage[key]
        stats["free_ram_mb"] += int(node["memory_mb"]) - usage["memory_mb_used"]
        stats["free_disk_gb"] += int(node["local_gb"]) - usage["local_gb_used"]
        stats["disk_available_least"] += int(node["local_gb"]) - usage["local_gb_used"]
    return web.json_response({"hypervisor_statistics": stats})


async def _matching(request: web.Request) -> list[Row]:
    if mv_at_least(request, V2_53):
        raise NotFound("The resource could not be found.")
    pattern = request.match_info["pattern"]
    nodes = [
        n for n in await _nodes(request) if pattern.lower() in n["hypervisor_hostname"].lower()
    ]
    if not nodes:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return nodes


async def search_hypervisors(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:search")
    nodes = await _matching(request)
    return web.json_response(
        {"hypervisors": [await _hypervisor_view(request, n, False) for n in nodes]}
    )


async def hypervisor_servers(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-hypervisors:servers")
    nodes = await _matching(request)
    views = []
    for node in nodes:
        servers = await _servers_on(request, node["host"])
        views.append(await _hypervisor_view(request, node, False, servers=servers))
    return web.json_response({"hypervisors": views})


# ----------------------------------------------------------------- availability zones


async def _zones(request: web.Request) -> tuple[list[str], list[str], list[Row]]:
    nodes = await _nodes(request)
    available = sorted({n["zone"] for n in nodes if not n["disabled"]})
    unavailable = sorted({n["zone"] for n in nodes} - set(available))
    return available, unavailable, nodes


async def list_zones(request: web.Request) -> web.Response:
    available, unavailable, _ = await _zones(request)
    info = [
        {"zoneName": z, "zoneState": {"available": True}, "hosts": None}
        for z in available
        if z != INTERNAL_ZONE
    ]
    info += [
        {"zoneName": z, "zoneState": {"available": False}, "hosts": None}
        for z in unavailable
        if z != INTERNAL_ZONE
    ]
    return web.json_response({"availabilityZoneInfo": info})


async def list_zones_detail(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-availability-zone:detail")
    available, unavailable, nodes = await _zones(request)
    svc_rows = await _service_rows(request)
    info: list[dict[str, Any]] = []
    for zone in [INTERNAL_ZONE, *available]:
        hosts: dict[str, dict[str, Any]] = {}
        for svc in svc_rows:
            if svc["zone"] != zone:
                continue
            hosts.setdefault(svc["host"], {})[svc["binary"]] = {
                "available": svc["up"],
                "active": not svc["disabled"],
                "updated_at": nova_usec_time(svc["updated_at"]),
            }
        info.append({"zoneName": zone, "zoneState": {"available": True}, "hosts": hosts})
    for zone in unavailable:
        info.append({"zoneName": zone, "zoneState": {"available": False}, "hosts": None})
    return web.json_response({"availabilityZoneInfo": info})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-services", list_services)
    router.add_put(prefix + "/os-services/{service_id}", update_service)
    router.add_delete(prefix + "/os-services/{service_id}", delete_service)
    base = prefix + "/os-hypervisors"
    router.add_get(base, list_hypervisors)
    router.add_get(base + "/detail", list_hypervisors_detail)
    router.add_get(base + "/statistics", hypervisor_statistics)
    router.add_get(base + "/{hypervisor_id}/uptime", hypervisor_uptime)
    router.add_get(base + "/{pattern}/search", search_hypervisors)
    router.add_get(base + "/{pattern}/servers", hypervisor_servers)
    router.add_get(base + "/{hypervisor_id}", show_hypervisor)
    router.add_get(prefix + "/os-availability-zone", list_zones)
    router.add_get(prefix + "/os-availability-zone/detail", list_zones_detail)
