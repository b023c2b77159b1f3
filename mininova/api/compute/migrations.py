"""Resize and cold migration: the `resize`, `migrate`, `confirmResize` and `revertResize`
server actions, `GET /os-migrations` and `GET /servers/{id}/migrations` (2.23+).

Each action handler checks its body and calls one `mininova.compute.resize` operation.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.compute.servers import get_server
from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest, NotFound
from mininova.api.microversions import V2_23, V2_56, V2_59, V2_66, V2_80
from mininova.api.pagination import next_query, paginate
from mininova.api.responses import json_response
from mininova.api.validation import validate
from mininova.compute import resize as ops
from mininova.store.db import Row
from mininova.timeutil import iso, nova_usec_time, parse_iso

RESIZE = {
    "type": "object",
    "properties": {
        "flavorRef": {
            "type": ["string", "integer"],
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^(?!\s*$).+",
        },
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
    },
    "required": ["flavorRef"],
    "additionalProperties": False,
}
MIGRATE_V256 = {
    "type": ["object", "null"],
    "properties": {"host": {"type": ["string", "null"], "minLength": 1, "maxLength": 255}},
    "additionalProperties": False,
}
NULL = {"type": "null"}


async def resize(request: web.Request, inst: Row, body: Any) -> web.Response:
    validate(body, RESIZE)
    svc = services(request)
    await ops.resize(svc.store, svc.conductor, context(request), inst, str(body["flavorRef"]))
    return web.Response(status=202)


async def migrate(request: web.Request, inst: Row, body: Any) -> web.Response:
    ctx = context(request)
    ctx.require_admin("os_compute_api:os-migrate-server:migrate")
    host = None
    if mv_at_least(request, V2_56):
        validate(body, MIGRATE_V256)
        host = (body or {}).get("host")
    else:
        validate(body, NULL)
    svc = services(request)
    await ops.migrate(svc.store, svc.conductor, ctx, inst, host)
    return web.Response(status=202)


async def confirm_resize(request: web.Request, inst: Row, body: Any) -> web.Response:
    validate(body, NULL)
    svc = services(request)
    await ops.confirm_resize(svc.store, svc.conductor, context(request), inst)
    return web.Response(status=204)


async def revert_resize(request: web.Request, inst: Row, body: Any) -> web.Response:
    validate(body, NULL)
    svc = services(request)
    await ops.revert_resize(svc.store, svc.conductor, context(request), inst, svc.config)
    return web.Response(status=202)


def _view(request: web.Request, row: Row) -> dict[str, Any]:
    view: dict[str, Any] = {
        "created_at": nova_usec_time(row["created_at"]),
        "dest_compute": row["dest_compute"],
        "dest_host": None,
        "dest_node": row["dest_compute"],
        "id": row["id"],
        "instance_uuid": row["instance_uuid"],
        "new_instance_type_id": row["new_flavor"].get("id"),
        "old_instance_type_id": row["old_flavor"].get("id"),
        "source_compute": row["source_compute"],
        "source_node": row["source_compute"],
        "status": row["status"],
        "updated_at": nova_usec_time(row["updated_at"]),
    }
    if mv_at_least(request, V2_23):
        view["migration_type"] = row["migration_type"]
    if mv_at_least(request, V2_59):
        view["uuid"] = row["uuid"]
    if mv_at_least(request, V2_80):
        view["user_id"] = row["user_id"]
        view["project_id"] = row["project_id"]
    return view


def _time_filter(query: Any, name: str) -> str | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return iso(parse_iso(raw))
    except ValueError:
        raise BadRequest(
            f"Invalid input for field/attribute {name}. Value: {raw}. '{raw}' is not a 'date-time'"
        ) from None


async def list_migrations(request: web.Request) -> web.Response:
    """Newest first; filters as Nova's; from 2.59 paged by `limit`/`marker` (a migration
    uuid) with `changes-since`, from 2.66 `changes-before`, from 2.80 `user_id`/`project_id`."""
    ctx = context(request)
    ctx.require_admin("os_compute_api:os-migrations:index")
    query = request.query
    rows = await ops.list_migrations(
        services(request).store, ctx, instance_uuid=query.get("instance_uuid")
    )
    keys = ["status", "migration_type", "source_compute"]
    if mv_at_least(request, V2_80):
        keys += ["user_id", "project_id"]
    for key in keys:
        if query.get(key):
            rows = [r for r in rows if r[key] == query[key]]
    links: dict[str, Any] = {}
    if mv_at_least(request, V2_59):
        since = _time_filter(query, "changes-since")
        before = _time_filter(query, "changes-before") if mv_at_least(request, V2_66) else None
        if since is not None:
            rows = [r for r in rows if iso(parse_iso(r["updated_at"])) >= since]
        if before is not None:
            rows = [r for r in rows if iso(parse_iso(r["updated_at"])) <= before]
        marker = query.get("marker")
        if marker is not None and marker not in {r["uuid"] for r in rows}:
            raise BadRequest(f"Marker {marker} could not be found.")
        rows, limit = paginate(rows, query, lambda r: r["uuid"])
        if limit and len(rows) == limit:
            url = services(request).url(
                "/compute/v2.1/os-migrations?" + next_query(query, rows[-1]["uuid"])
            )
            links["migrations_links"] = [{"rel": "next", "href": url}]
    return json_response({"migrations": [_view(request, r) for r in rows], **links})


async def server_migrations(request: web.Request) -> web.Response:
    """GET /servers/{id}/migrations (2.23+): Nova lists only in-progress live migrations;
    mininova has none, so the list is always empty."""
    if not mv_at_least(request, V2_23):
        raise NotFound("The resource could not be found.")
    context(request).require_admin("os_compute_api:servers:migrations:index")
    await get_server(request)
    return json_response({"migrations": []})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-migrations", list_migrations)
    router.add_get(prefix + "/servers/{server_id}/migrations", server_migrations)
