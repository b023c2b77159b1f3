"""Servers: list/detail/show/update/delete, metadata, /ips and instance actions.

Handlers parse and render; the operations are `mininova.compute.api`'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mininova.api.compute.schemas import servers as schemas
from mininova.api.compute.server_create import check_ip, create_server
from mininova.api.compute.views import servers as views
from mininova.api.context import context, microversion, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.microversions import V2_71, V2_98, at_least
from mininova.api.pagination import next_query, parse_limit
from mininova.api.responses import encode_json, json_response
from mininova.api.validation import validated_body
from mininova.compute import api as compute
from mininova.store import floating_ips
from mininova.store.db import Row
from mininova.store.instances import decode as decode_instance
from mininova.timeutil import iso, parse_iso


async def get_server(request: web.Request, uuid: str | None = None) -> Row:
    """The caller's server (any project for admin), or 404 — never another project's."""
    uuid = uuid or request.match_info["server_id"]
    return await compute.get_server(services(request).store, context(request), uuid)


async def _show(request: web.Request, uuid: str) -> tuple[Row, list[str] | None]:
    """A server with what its full view needs, in one query; its groups from 2.71."""
    svc, ctx, mv = services(request), context(request), microversion(request)
    inst = await compute.get_server(
        svc.store, ctx, uuid, with_image_properties=at_least(mv, V2_98), with_node=ctx.is_admin
    )
    groups = await compute.server_groups_of(svc.store, inst) if at_least(mv, V2_71) else None
    (inst,) = await _with_floating_ips(request, [inst])
    (inst,) = await _with_security_groups(request, [inst])
    return inst, groups


async def _with_security_groups(request: web.Request, rows: list[Row]) -> list[Row]:
    """The servers with their security groups' names as `security_group_names` (one query)."""
    names = await compute.security_group_names(
        services(request).store, [row["uuid"] for row in rows]
    )
    return [{**row, "security_group_names": names[row["uuid"]]} for row in rows]


async def _with_floating_ips(request: web.Request, rows: list[Row]) -> list[Row]:
    """The servers with their associated floating IPs as `floating_ips` (one query)."""
    uuids = [row["uuid"] for row in rows]
    found = await floating_ips.floating_ips_of_instances(services(request).store, uuids)
    return [{**row, "floating_ips": found[row["uuid"]]} for row in rows]


def _host_status(request: web.Request, inst: Row) -> str | None:
    if not context(request).is_admin:
        return None
    return compute.host_status(inst, services(request).config)


def _image_props(request: web.Request, inst: Row) -> dict | None:
    if not at_least(microversion(request), V2_98):
        return None
    return inst.get("image_properties") or {}


def _bool_param(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")


def _list_query(request: web.Request, policy: str) -> compute.ServerQuery:
    """The list filters of the contract, parsed (400 for malformed ones). `all_tenants` is
    admin-only: a member asking for it gets Nova's 403 for the `policy` rule."""
    q = request.query
    all_tenants = "all_tenants" in q and _bool_param(q.get("all_tenants"))
    if all_tenants:
        context(request).require_admin(f"os_compute_api:servers:{policy}:get_all_tenants")
    changes = q.get("changes-since") or q.get("changes_since")
    since = None
    if changes:
        try:
            since = iso(parse_iso(changes))
        except ValueError:
            raise BadRequest(
                f"Invalid input for field/attribute changes-since. "
                f"Value: {changes}. '{changes}' is not a 'date-time'"
            ) from None
    return compute.ServerQuery(
        all_tenants=all_tenants,
        project_id=q.get("project_id") or q.get("tenant_id") or None,
        host=q.get("host") or None,
        image_ref=q["image"].rsplit("/", 1)[-1] if q.get("image") else None,
        flavor_id=q["flavor"].rsplit("/", 1)[-1] if q.get("flavor") else None,
        changed_since=since,
        name=q.get("name") or None,
        status=q.get("status") or None,
        sort_key=q.get("sort_key", "created_at"),
        descending=q.get("sort_dir", "desc").lower() != "asc",
        marker=q.get("marker"),
        limit=parse_limit(q),
    )


def _links_for(request: web.Request, items: list[Row], path: str) -> dict[str, Any]:
    limit = parse_limit(request.query)
    if limit is None or not items or len(items) < limit:
        return {}
    query = next_query(request.query, items[-1]["uuid"])
    return {"servers_links": [{"rel": "next", "href": services(request).url(f"{path}?{query}")}]}


# A listing's body (a document, or one already encoded) and how many seconds the clock alone
# leaves it true (None while nothing is written).
Rendered = tuple[dict[str, Any] | bytes, float | None]


async def _cached(
    request: web.Request, render: Callable[[web.Request], Awaitable[Rendered]]
) -> web.Response:
    """The listing's body as last rendered for the same request and caller while the
    database has not changed since (`ResponseCache`); else `render(request)` it."""
    svc, ctx = services(request), context(request)
    key = (request.path_qs, microversion(request), ctx.project_id, ctx.user_id, *ctx.roles)
    marker = await svc.store.change_marker()  # before the reads
    body = svc.response_cache.get(key, marker)
    if body is None:
        data, ttl = await render(request)
        body = data if isinstance(data, bytes) else encode_json(data)
        svc.response_cache.put(key, marker, body, ttl)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def _render_list(request: web.Request) -> Rendered:
    svc = services(request)
    items = await compute.list_servers(svc.store, context(request), _list_query(request, "index"))
    body: dict[str, Any] = {"servers": [views.brief_view(svc.base_url, r) for r in items]}
    body.update(_links_for(request, items, "/compute/v2.1/servers"))
    return body, None


async def _render_detail(request: web.Request) -> Rendered:
    """ONE query for the page: image properties (2.98+) and host state (admins) are joined.

    Each server's encoded document is kept (`RenderedServers`) under everything it is
    rendered from, so a poll that is sent the same servers again only encodes the changed."""
    svc, ctx, mv = services(request), context(request), microversion(request)
    with_props = at_least(mv, V2_98)
    rows = await compute.list_servers(
        svc.store,
        ctx,
        _list_query(request, "detail"),
        with_image_properties=with_props,
        with_node=ctx.is_admin,
        decoded=False,
    )
    uuids = [row["uuid"] for row in rows]
    floating = await floating_ips.floating_ips_of_instances(svc.store, uuids)
    group_names = await compute.security_group_names(svc.store, uuids)
    rendered, shape = svc.rendered_servers, (svc.base_url, mv, ctx.is_admin)
    statuses, ttl = compute.host_statuses(rows, svc.config) if ctx.is_admin else ([], None)
    docs: list[bytes] = []
    for index, raw in enumerate(rows):
        status = statuses[index] if ctx.is_admin else None
        fips, names = floating[raw["uuid"]], group_names[raw["uuid"]]
        key = (shape, status, tuple(raw.values()), repr(fips), tuple(names))
        doc = rendered.get(key)
        if doc is None:
            inst = {**decode_instance(raw), "floating_ips": fips, "security_group_names": names}
            view = views.show_view(
                svc.base_url,
                inst,
                mv,
                ctx.is_admin,
                status,
                (inst.get("image_properties") or {}) if with_props else None,
                detail_list=True,
            )
            doc = encode_json(view)
            rendered.put(key, doc)
        docs.append(doc)
    body = b'{"servers":[' + b",".join(docs) + b"]"
    links = _links_for(request, rows, "/compute/v2.1/servers/detail")
    if links:
        body += b',"servers_links":' + encode_json(links["servers_links"])
    return body + b"}", ttl


async def list_servers(request: web.Request) -> web.Response:
    return await _cached(request, _render_list)


async def list_servers_detail(request: web.Request) -> web.Response:
    return await _cached(request, _render_detail)


async def show_server(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    inst, groups = await _show(request, request.match_info["server_id"])
    view = views.show_view(
        svc.base_url,
        inst,
        microversion(request),
        ctx.is_admin,
        _host_status(request, inst),
        _image_props(request, inst),
        server_groups=groups,
    )
    return json_response({"server": view})


async def update_server(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    inst = await get_server(request)
    body = (await validated_body(request, schemas.UPDATE))["server"]
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = body["name"]
    if "accessIPv4" in body:
        changes["access_ip_v4"] = check_ip(body["accessIPv4"], 4, "accessIPv4")
    if "accessIPv6" in body:
        changes["access_ip_v6"] = check_ip(body["accessIPv6"], 6, "accessIPv6")
    if "description" in body:
        changes["description"] = body["description"]
    if "hostname" in body:
        changes["hostname"] = body["hostname"]
    await compute.update_server(svc.store, ctx, inst, changes)
    inst, groups = await _show(request, inst["uuid"])
    view = views.update_view(
        svc.base_url,
        inst,
        microversion(request),
        ctx.is_admin,
        _host_status(request, inst),
        _image_props(request, inst),
        groups,
    )
    return json_response({"server": view})


async def delete_server(request: web.Request) -> web.Response:
    svc = services(request)
    inst = await get_server(request)
    soft = svc.config.reclaim_instance_interval > 0
    await compute.delete_server(svc.store, svc.conductor, context(request), inst, soft=soft)
    return web.Response(status=204)


# ---- metadata -------------------------------------------------------------------------------


async def get_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    return json_response({"metadata": inst["metadata"]})


async def replace_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    body = await validated_body(request, schemas.METADATA_BODY)
    meta = await compute.replace_metadata(
        services(request).store, context(request), inst, body["metadata"]
    )
    return json_response({"metadata": meta})


async def merge_metadata(request: web.Request) -> web.Response:
    inst = await get_server(request)
    body = await validated_body(request, schemas.METADATA_BODY)
    meta = await compute.merge_metadata(
        services(request).store, context(request), inst, body["metadata"]
    )
    return json_response({"metadata": meta})


async def get_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    if key not in inst["metadata"]:
        raise NotFound("Metadata item was not found")
    return json_response({"meta": {key: inst["metadata"][key]}})


async def put_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    body = await validated_body(request, schemas.METADATA_ITEM_BODY)
    if key not in body["meta"]:
        raise BadRequest("Request body and URI mismatch")
    value = body["meta"][key]
    await compute.set_metadata_item(services(request).store, context(request), inst, key, value)
    return json_response({"meta": {key: value}})


async def delete_metadata_item(request: web.Request) -> web.Response:
    inst = await get_server(request)
    key = request.match_info["key"]
    if key not in inst["metadata"]:
        raise NotFound("Metadata item was not found")
    await compute.delete_metadata_item(services(request).store, context(request), inst, key)
    return web.Response(status=204)


# ---- ips ------------------------------------------------------------------------------------


async def list_ips(request: web.Request) -> web.Response:
    (inst,) = await _with_floating_ips(request, [await get_server(request)])
    return json_response(views.ips_view(inst))


async def show_ips(request: web.Request) -> web.Response:
    (inst,) = await _with_floating_ips(request, [await get_server(request)])
    network = request.match_info["network"]
    addresses = views.ips_view(inst)["addresses"]
    if network not in addresses:
        raise NotFound("Instance is not a member of specified network")
    return json_response({network: addresses[network]})


# ---- instance actions -----------------------------------------------------------------------


async def list_actions(request: web.Request) -> web.Response:
    _, rows = await compute.list_actions(
        services(request).store, context(request), request.match_info["server_id"]
    )
    mv = microversion(request)
    return json_response({"instanceActions": [views.action_view(r, mv) for r in rows]})


async def show_action(request: web.Request) -> web.Response:
    ctx = context(request)
    inst, action, events = await compute.get_action(
        services(request).store,
        ctx,
        request.match_info["server_id"],
        request.match_info["request_id"],
    )
    view = views.action_detail_view(
        action, events, inst["project_id"], microversion(request), ctx.is_admin
    )
    return json_response({"instanceAction": view})


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
