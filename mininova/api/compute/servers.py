"""Servers: list/detail/show/update/delete, metadata, /ips and instance actions."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mininova import instance_states as st
from mininova.api.compute import server_views as views
from mininova.api.compute.server_create import create_server
from mininova.api.compute.server_groups import groups_of_instance
from mininova.api.context import REQUEST_ID, context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Conflict, NotFound
from mininova.api.microversions import V2_51, V2_58, V2_62, V2_71, V2_98, at_least
from mininova.api.pagination import next_query, paginate, parse_limit
from mininova.api.validation import validated_body
from mininova.hosts import is_up
from mininova.store import instances as db
from mininova.store.db import loads
from mininova.timeutil import iso, nova_usec_time, parse_iso

_SORT_KEYS = {"created_at", "display_name", "updated_at", "uuid", "vm_state", "launched_at"}


async def get_server(request: web.Request, uuid: str | None = None) -> dict[str, Any]:
    """The caller's server (any project for admin), or 404 — never another project's."""
    ctx = context(request)
    uuid = uuid or request.match_info["server_id"]
    inst = await db.get(services(request).store, uuid)
    if inst is None or (not ctx.is_admin and inst["project_id"] != ctx.project_id):
        raise NotFound(f"Instance {uuid} could not be found.")
    return inst


async def _host_status(request: web.Request, inst: dict[str, Any]) -> str:
    if not inst["host"]:
        return ""
    row = await services(request).store.fetchone(
        "SELECT * FROM compute_nodes WHERE host = ?", (inst["host"],)
    )
    if row is None:
        return "UNKNOWN"
    return node_status(row, services(request).config)


def node_status(node: dict[str, Any], config: Any) -> str:
    """Nova's host_status of a compute node: MAINTENANCE, UP or DOWN."""
    if node["disabled"]:
        return "MAINTENANCE"
    return "UP" if is_up(node, config) else "DOWN"


async def _image_props(request: web.Request, inst: dict[str, Any]) -> dict | None:
    if not mv_at_least(request, V2_98):
        return None
    row = await services(request).store.fetchone(
        "SELECT properties FROM images WHERE id = ?", (inst["image_ref"],)
    )
    return loads(row["properties"], {}) if row else {}


async def _server_groups(request: web.Request, inst: dict[str, Any]) -> list[str] | None:
    if not mv_at_least(request, V2_71):
        return None
    return await groups_of_instance(services(request).store, inst["uuid"])


async def render_show(
    request: web.Request, inst: dict[str, Any], detail_list: bool = False
) -> dict[str, Any]:
    ctx = context(request)
    host_status = await _host_status(request, inst) if ctx.is_admin else None
    groups = None if detail_list else await _server_groups(request, inst)
    return views.show_view(
        services(request).base_url,
        inst,
        microversion(request),
        ctx.is_admin,
        host_status,
        await _image_props(request, inst),
        detail_list=detail_list,
        server_groups=groups,
    )


def _bool_param(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")


async def _query(request: web.Request) -> list[dict[str, Any]]:
    """Apply the list filters of the contract; returns decoded instance rows."""
    svc, ctx = services(request), context(request)
    q = request.query
    sql = ["SELECT * FROM instances WHERE deleted = 0"]
    params: list[Any] = []
    all_tenants = "all_tenants" in q and _bool_param(q.get("all_tenants"))
    project = q.get("project_id") or q.get("tenant_id")
    if ctx.is_admin and (all_tenants or project):
        if project:
            sql.append("AND project_id = ?")
            params.append(project)
    else:
        sql.append("AND project_id = ?")
        params.append(ctx.project_id)
    if ctx.is_admin and q.get("host"):
        sql.append("AND host = ?")
        params.append(q["host"])
    if q.get("image"):
        sql.append("AND image_ref = ?")
        params.append(q["image"].rsplit("/", 1)[-1])
    if q.get("flavor"):
        sql.append("AND flavor_id = ?")
        params.append(q["flavor"].rsplit("/", 1)[-1])
    changes = q.get("changes-since") or q.get("changes_since")
    if changes:
        try:
            since = iso(parse_iso(changes))
        except ValueError:
            raise BadRequest(
                f"Invalid input for field/attribute changes-since. "
                f"Value: {changes}. '{changes}' is not a 'date-time'"
            ) from None
        sql.append("AND updated_at >= ?")
        params.append(since)
    sort_key = q.get("sort_key", "created_at")
    if sort_key not in _SORT_KEYS:
        raise BadRequest(f"Invalid input for field/attribute sort_key. Value: {sort_key}.")
    column = {"display_name": "name", "uuid": "uuid"}.get(sort_key, sort_key)
    direction = "ASC" if q.get("sort_dir", "desc").lower() == "asc" else "DESC"
    sql.append(f"ORDER BY {column} {direction}, id {direction}")
    rows = [db.decode(r) for r in await svc.store.fetchall(" ".join(sql), params)]
    items: list[dict[str, Any]] = [r for r in rows if r is not None]
    if q.get("name"):
        try:
            pattern = re.compile(q["name"])
        except re.error:
            raise BadRequest(f"Invalid name filter: {q['name']!r}") from None
        items = [r for r in items if pattern.search(r["name"])]
    if q.get("status"):
        wanted = q["status"].upper()
        items = [r for r in items if st.status(r["vm_state"], r["task_state"]) == wanted]
    return _paginate(items, q)


def _paginate(items: list[dict[str, Any]], q: Any) -> list[dict[str, Any]]:
    return paginate(items, q, lambda r: r["uuid"])[0]


def _links_for(request: web.Request, items: list[dict[str, Any]], path: str) -> dict[str, Any]:
    limit = parse_limit(request.query)
    if limit is None or not items or len(items) < limit:
        return {}
    query = next_query(request.query, items[-1]["uuid"])
    return {"servers_links": [{"rel": "next", "href": services(request).url(f"{path}?{query}")}]}


async def list_servers(request: web.Request) -> web.Response:
    items = await _query(request)
    base = services(request).base_url
    body: dict[str, Any] = {"servers": [views.brief_view(base, r) for r in items]}
    body.update(_links_for(request, items, "/compute/v2.1/servers"))
    return web.json_response(body)


async def list_servers_detail(request: web.Request) -> web.Response:
    items = await _query(request)
    svc, ctx, mv = services(request), context(request), microversion(request)
    # One query each for host states and image properties, not two per server.
    host_status: dict[str, str] = {}
    if ctx.is_admin:
        for node in await svc.store.fetchall("SELECT * FROM compute_nodes"):
            host_status[node["host"]] = node_status(node, svc.config)
    image_props: dict[str, dict] = {}
    if at_least(mv, V2_98):
        for row in await svc.store.fetchall("SELECT id, properties FROM images"):
            image_props[row["id"]] = loads(row["properties"], {})
    servers = [
        views.show_view(
            svc.base_url,
            r,
            mv,
            ctx.is_admin,
            (host_status.get(r["host"], "UNKNOWN") if r["host"] else "") if ctx.is_admin else None,
            image_props.get(r["image_ref"], {}) if at_least(mv, V2_98) else None,
            detail_list=True,
        )
        for r in items
    ]
    body: dict[str, Any] = {"servers": servers}
    body.update(_links_for(request, items, "/compute/v2.1/servers/detail"))
    return web.json_response(body)


async def show_server(request: web.Request) -> web.Response:
    inst = await get_server(request)
    return web.json_response({"server": await render_show(request, inst)})


_UPDATE_SCHEMA = {
    "type": "object",
    "required": ["server"],
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": r"^(?![\s\u00a0])(?!.*[\s\u00a0]$).*$",
                },
                "accessIPv4": {"type": ["string", "null"]},
                "accessIPv6": {"type": ["string", "null"]},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "hostname": {"type": "string", "maxLength": 255},
                "OS-DCF:diskConfig": {"type": "string"},
            },
            "additionalProperties": False,
        }
    },
    "additionalProperties": False,
}


async def update_server(request: web.Request) -> web.Response:
    from mininova.api.compute.server_create import _check_ip, sanitize_hostname

    svc, ctx = services(request), context(request)
    inst = await get_server(request)
    body = (await validated_body(request, _UPDATE_SCHEMA))["server"]
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = body["name"]
    if "accessIPv4" in body:
        changes["access_ip_v4"] = _check_ip(body["accessIPv4"], 4, "accessIPv4")
    if "accessIPv6" in body:
        changes["access_ip_v6"] = _check_ip(body["accessIPv6"], 6, "accessIPv6")
    if "description" in body:
        changes["description"] = body["description"]
    if "hostname" in body:
        changes["hostname"] = sanitize_hostname(body["hostname"])
    if changes:
        await db.update(svc.store, inst["uuid"], **changes)
    inst = await get_server(request, inst["uuid"])
    host_status = await _host_status(request, inst) if ctx.is_admin else None
    view = views.update_view(
        svc.base_url,
        inst,
        microversion(request),
        ctx.is_admin,
        host_status,
        await _image_props(request, inst),
        await _server_groups(request, inst),
    )
    return web.json_response({"server": view})


def check_locked(request: web.Request, inst: dict[str, Any]) -> None:
    ctx = context(request)
    if inst["locked"] and not ctx.is_admin:
        raise Conflict(f"Instance {inst['uuid']} is locked")


async def delete_server(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    inst = await get_server(request)
    check_locked(request, inst)
    if st.can_delete(inst["task_state"]):
        await db.start_action(
            svc.store, inst["uuid"], "delete", request[REQUEST_ID], ctx.user_id, ctx.project_id
        )
        await db.update(svc.store, inst["uuid"], task_state=st.DELETING)
        svc.conductor.delete_instance(inst["uuid"])
    return web.Response(status=204)


# ---- metadata -------------------------------------------------------------------------------

_META_ITEMS = {
    "type": "object",
    "maxProperties": 128,
    "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}


async def _save_metadata(request: web.Request, inst: dict[str, Any], meta: dict) -> None:
    check_locked(request, inst)
    await db.update(services(request).store, inst["uuid"], metadata=meta)


async def get_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    return web.json_response({"metadata": inst["metadata"]})


async def replace_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    body = await validated_body(
        request,
        {"type": "object", "required": ["metadata"], "properties": {"metadata": _META_ITEMS}},
    )
    await _save_metadata(request, inst, body["metadata"])
    return web.json_response({"metadata": body["metadata"]})


async def merge_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    body = await validated_body(
        request,
        {"type": "object", "required": ["metadata"], "properties": {"metadata": _META_ITEMS}},
    )
    meta = {**inst["metadata"], **body["metadata"]}
    if len(meta) > 128:
        raise BadRequest("Quota exceeded for metadata_items.")
    await _save_metadata(request, inst, meta)
    return web.json_response({"metadata": meta})


async def get_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    if key not in inst["metadata"]:
        raise NotFound("Metadata item was not found")
    return web.json_response({"meta": {key: inst["metadata"][key]}})


async def put_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    body = await validated_body(
        request,
        {
            "type": "object",
            "required": ["meta"],
            "properties": {"meta": {**_META_ITEMS, "minProperties": 1, "maxProperties": 1}},
        },
    )
    if key not in body["meta"]:
        raise BadRequest("Request body and URI mismatch")
    meta = {**inst["metadata"], key: body["meta"][key]}
    await _save_metadata(request, inst, meta)
    return web.json_response({"meta": {key: body["meta"][key]}})


async def delete_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    if key not in inst["metadata"]:
        raise NotFound("Metadata item was not found")
    meta = {k: v for k, v in inst["metadata"].items() if k != key}
    await _save_metadata(request, inst, meta)
    return web.Response(status=204)


# ---- ips ------------------------------------------------------------------------------------


async def list_ips(request: web.Request) -> web.Response:
    inst = await get_server(request)
    return web.json_response(views.ips_view(inst))


async def show_ips(request: web.Request) -> web.Response:
    inst = await get_server(request)
    network = request.match_info["network"]
    addresses = views.ips_view(inst)["addresses"]
    if network not in addresses:
        raise NotFound("Instance is not a member of specified network")
    return web.json_response({network: addresses[network]})


# ---- instance actions -----------------------------------------------------------------------


def _action_view(row: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    view = {
        "action": row["action"],
        "instance_uuid": row["instance_uuid"],
        "request_id": row["request_id"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "start_time": nova_usec_time(row["start_time"]),
        "message": row["message"],
    }
    if at_least(mv, V2_58):
        view["updated_at"] = nova_usec_time(row["finish_time"] or row["start_time"])
    return view


async def list_actions(request: web.Request) -> web.Response:
    inst = await get_server(request)
    rows = await services(request).store.fetchall(
        "SELECT * FROM instance_actions WHERE instance_uuid = ? ORDER BY id DESC", (inst["uuid"],)
    )
    mv = microversion(request)
    return web.json_response({"instanceActions": [_action_view(r, mv) for r in rows]})


async def show_action(request: web.Request) -> web.Response:
    ctx = context(request)
    inst = await get_server(request)
    store = services(request).store
    row = await store.fetchone(
        "SELECT * FROM instance_actions WHERE instance_uuid = ? AND request_id = ?",
        (inst["uuid"], request.match_info["request_id"]),
    )
    if row is None:
        raise NotFound(f"Action {request.match_info['request_id']} not found")
    mv = microversion(request)
    view = _action_view(row, mv)
    events = await store.fetchall(
        "SELECT * FROM instance_action_events WHERE action_id = ? ORDER BY id", (row["id"],)
    )
    items = []
    for ev in events:
        item = {
            "event": ev["event"],
            "start_time": nova_usec_time(ev["start_time"]),
            "finish_time": nova_usec_time(ev["finish_time"]),
            "result": ev["result"],
        }
        if ctx.is_admin:
            item["traceback"] = ev["traceback"]
        if at_least(mv, V2_62):
            item["hostId"] = views.host_id(inst["project_id"], ev["host"])
            if ctx.is_admin:
                item["host"] = ev["host"] or ""
        items.append(item)
    if ctx.is_admin or at_least(mv, V2_51):
        view["events"] = items
    return web.json_response({"instanceAction": view})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/servers", list_servers)
    router.add_post(prefix + "/servers", create_server)
    router.add_get(prefix + "/servers/detail", list_servers_detail)
    router.add_get(prefix + "/servers/{server_id}", show_server)
    router.add_put(prefix + "/servers/{server_id}", update_server)
    router.add_delete(prefix + "/servers/{server_id}", delete_server)
    meta = prefix + "/servers/{server_id}/metadata"
    router.add_get(meta, get_metadata)
    router.add_put(meta, replace_metadata)
    router.add_post(meta, merge_metadata)
    router.add_get(meta + "/{key}", get_metadata_item)
    router.add_put(meta + "/{key}", put_metadata_item)
    router.add_delete(meta + "/{key}", delete_metadata_item)
    router.add_get(prefix + "/servers/{server_id}/ips", list_ips)
    router.add_get(prefix + "/servers/{server_id}/ips/{network}", show_ips)
    router.add_get(prefix + "/servers/{server_id}/os-instance-actions", list_actions)
    router.add_get(prefix + "/servers/{server_id}/os-instance-actions/{request_id}", show_action)
