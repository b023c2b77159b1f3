"""Compute API: flavors, flavor access and flavor extra specs.

Views follow Nova per microversion: `description` from 2.55, `extra_specs` embedded from
2.61, `swap` is "" when 0 below 2.75 and 0 from 2.75.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest, Conflict, NotFound
from mininova.api.microversions import (
    V2_1,
    V2_55,
    V2_61,
    V2_75,
    Field,
    render_fields,
    schema_for,
)
from mininova.api.pagination import next_query, paginate
from mininova.api.validation import validated_body
from mininova.store.db import Row
from mininova.timeutil import now_iso

_FLAVOR_ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_SPEC_KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")

# Nova's sort keys → our columns.
_SORT_KEYS = {
    "flavorid": "id",
    "id": "rowid",
    "name": "name",
    "memory_mb": "ram",
    "root_gb": "disk",
    "ephemeral_gb": "ephemeral",
    "vcpus": "vcpus",
    "swap": "swap",
    "rxtx_factor": "rxtx_factor",
    "is_public": "is_public",
    "disabled": "disabled",
    "created_at": "created_at",
    "updated_at": "created_at",
    "description": "description",
    "vcpu_weight": "rowid",
}


def _int_param(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid {name} filter [{value}]") from None
    if number < minimum:
        raise BadRequest(f"Invalid {name} filter [{value}]")
    return number


def _links(request: web.Request, flavor_id: str) -> list[dict[str, str]]:
    svc = services(request)
    return [
        {"rel": "self", "href": svc.url(f"/compute/v2.1/flavors/{flavor_id}")},
        {"rel": "bookmark", "href": svc.url(f"/compute/flavors/{flavor_id}")},
    ]


async def _extra_specs(request: web.Request, flavor_id: str) -> dict[str, str]:
    rows = await services(request).store.fetchall(
        "SELECT key, value FROM flavor_extra_specs WHERE flavor_id = ? ORDER BY key", (flavor_id,)
    )
    return {r["key"]: r["value"] for r in rows}


@dataclass(frozen=True)
class _Flavor:
    row: Row
    links: list[dict[str, str]]
    extra_specs: dict[str, str] | None = None


# The flavor views, in response order: list items and the detailed view.
BRIEF_FIELDS: tuple[Field[_Flavor], ...] = (
    Field("id", lambda f: f.row["id"]),
    Field("name", lambda f: f.row["name"]),
    Field("links", lambda f: f.links),
    Field("description", lambda f: f.row.get("description"), since=V2_55),
)
DETAIL_FIELDS: tuple[Field[_Flavor], ...] = (
    Field("id", lambda f: f.row["id"]),
    Field("name", lambda f: f.row["name"]),
    Field("ram", lambda f: int(f.row["ram"])),
    Field("disk", lambda f: int(f.row["disk"])),
    Field("vcpus", lambda f: int(f.row["vcpus"])),
    Field("swap", lambda f: int(f.row["swap"]) or "", until=V2_75),
    Field("swap", lambda f: int(f.row["swap"]), since=V2_75),
    Field("OS-FLV-EXT-DATA:ephemeral", lambda f: int(f.row["ephemeral"])),
    Field("OS-FLV-DISABLED:disabled", lambda f: bool(f.row["disabled"])),
    Field("os-flavor-access:is_public", lambda f: bool(f.row["is_public"])),
    Field("rxtx_factor", lambda f: float(f.row["rxtx_factor"])),
    Field("links", lambda f: f.links),
    Field("description", lambda f: f.row.get("description"), since=V2_55),
    Field("extra_specs", lambda f: f.extra_specs, since=V2_61),
)


def brief_view(request: web.Request, row: Row) -> dict[str, Any]:
    flavor = _Flavor(row, _links(request, row["id"]))
    return render_fields(BRIEF_FIELDS, microversion(request), flavor)


async def detail_view(request: web.Request, row: Row) -> dict[str, Any]:
    specs = await _extra_specs(request, row["id"]) if mv_at_least(request, V2_61) else None
    flavor = _Flavor(row, _links(request, row["id"]), specs)
    return render_fields(DETAIL_FIELDS, microversion(request), flavor)


async def _visible(request: web.Request, row: Row) -> bool:
    ctx = context(request)
    if ctx.is_admin or row["is_public"]:
        return True
    access = await services(request).store.fetchone(
        "SELECT 1 AS x FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
        (row["id"], ctx.project_id),
    )
    return access is not None


async def get_flavor(request: web.Request, flavor_id: str) -> Row:
    """The flavor row if it exists and the caller may see it, else 404."""
    row = await services(request).store.fetchone(
        "SELECT rowid AS _rowid, * FROM flavors WHERE id = ?", (flavor_id,)
    )
    if row is None or not await _visible(request, row):
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return row


def _parse_is_public(value: str | None) -> bool | None:
    if value is None:
        return True
    text = value.strip().lower()
    if text == "none":
        return None
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid is_public filter [{value}]")


async def _list_rows(request: web.Request) -> tuple[list[Row], int | None]:
    ctx = context(request)
    q = request.query
    store = services(request).store
    where: list[str] = []
    params: list[Any] = []
    if ctx.is_admin:
        is_public = _parse_is_public(q.get("is_public"))
    else:
        is_public = True
        where.append("disabled = 0")
    if is_public is True:
        where.append(
            "(is_public = 1 OR id IN (SELECT flavor_id FROM flavor_access WHERE project_id = ?))"
        )
        params.append(ctx.project_id)
    elif is_public is False:
        where.append("is_public = 0")
    if "minRam" in q:
        where.append("ram >= ?")
        params.append(_int_param(q["minRam"], "minRam"))
    if "minDisk" in q:
        where.append("disk >= ?")
        params.append(_int_param(q["minDisk"], "minDisk"))
    sort_key = q.get("sort_key") or "flavorid"
    if sort_key not in _SORT_KEYS:
        raise BadRequest(f"Invalid sort_key [{sort_key}]")
    sort_dir = (q.get("sort_dir") or "asc").lower()
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort_dir [{q.get('sort_dir')}]")
    column = _SORT_KEYS[sort_key]
    sql = "SELECT rowid AS _rowid, * FROM flavors"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {column} {sort_dir.upper()}, id {sort_dir.upper()}"
    rows = await store.fetchall(sql, params)
    return paginate(rows, q, lambda r: r["id"], maximum=1000)


def _next_links(
    request: web.Request, rows: list[Row], limit: int | None, path: str
) -> list[dict[str, str]]:
    if limit is None or not rows or len(rows) < limit:
        return []
    query = next_query(request.query, rows[-1]["id"])
    return [{"rel": "next", "href": services(request).url(f"/compute/v2.1/{path}?{query}")}]


async def list_flavors(request: web.Request) -> web.Response:
    rows, limit = await _list_rows(request)
    body: dict[str, Any] = {"flavors": [brief_view(request, r) for r in rows]}
    links = _next_links(request, rows, limit, "flavors")
    if links:
        body["flavors_links"] = links
    return web.json_response(body)


async def list_flavors_detail(request: web.Request) -> web.Response:
    rows, limit = await _list_rows(request)
    body: dict[str, Any] = {"flavors": [await detail_view(request, r) for r in rows]}
    links = _next_links(request, rows, limit, "flavors/detail")
    if links:
        body["flavors_links"] = links
    return web.json_response(body)


async def show_flavor(request: web.Request) -> web.Response:
    row = await get_flavor(request, request.match_info["flavor_id"])
    return web.json_response({"flavor": await detail_view(request, row)})


_POSITIVE = {
    "type": ["integer", "string"],
    "pattern": r"^[0-9]*$",
    "minimum": 1,
    "maximum": 2147483647,
}
_NON_NEGATIVE = {
    "type": ["integer", "string"],
    "pattern": r"^[0-9]*$",
    "minimum": 0,
    "maximum": 2147483647,
}
_DESCRIPTION = {
    "type": ["string", "null"],
    "maxLength": 65535,
    "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$",
}


def _create_schema(with_description: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^(?!\s)[\s\S]*(?<!\s)$",
        },
        "id": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
        "ram": _POSITIVE,
        "vcpus": _POSITIVE,
        "disk": _NON_NEGATIVE,
        "OS-FLV-EXT-DATA:ephemeral": _NON_NEGATIVE,
        "swap": {"anyOf": [_NON_NEGATIVE, {"type": "string", "enum": [""]}]},
        "rxtx_factor": {
            "type": ["number", "string"],
            "pattern": r"^[0-9]+(\.[0-9]+)?$",
            "exclusiveMinimum": 0,
            "maximum": 3.40282e38,
        },
        "os-flavor-access:is_public": {"type": ["boolean", "string"]},
    }
    if with_description:
        props["description"] = _DESCRIPTION
    return {
        "type": "object",
        "properties": {
            "flavor": {
                "type": "object",
                "properties": props,
                "required": ["name", "ram", "vcpus", "disk"],
                "additionalProperties": False,
            }
        },
        "required": ["flavor"],
        "additionalProperties": False,
    }


# POST /flavors: `description` from 2.55.
_CREATE_SCHEMAS = [
    (V2_1, V2_55, _create_schema(False)),
    (V2_55, None, _create_schema(True)),
]


def _as_int(value: Any, field: str, minimum: int) -> int:
    if value is None or value == "":
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for field/attribute {field}.") from None
    if number < minimum:
        raise BadRequest(
            f"Invalid input for field/attribute {field}. Value: {value}. "
            f"{value} is less than the minimum of {minimum}"
        )
    return number


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest("Invalid input for field/attribute os-flavor-access:is_public.")


async def create_flavor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-manage:create")
    body = await validated_body(request, schema_for(microversion(request), _CREATE_SCHEMAS))
    spec = body["flavor"]
    name = spec["name"]
    flavor_id = spec.get("id")
    if flavor_id is None:
        flavor_id = str(uuid.uuid4())
    elif not _FLAVOR_ID_RE.match(flavor_id):
        raise BadRequest(
            f"Invalid input for field/attribute id. Value: {flavor_id}. Invalid flavor id."
        )
    ram = _as_int(spec["ram"], "ram", 1)
    vcpus = _as_int(spec["vcpus"], "vcpus", 1)
    disk = _as_int(spec["disk"], "disk", 0)
    ephemeral = _as_int(spec.get("OS-FLV-EXT-DATA:ephemeral"), "OS-FLV-EXT-DATA:ephemeral", 0)
    swap = _as_int(spec.get("swap"), "swap", 0)
    rxtx = float(spec.get("rxtx_factor", 1.0))
    is_public = _as_bool(spec.get("os-flavor-access:is_public", True))
    description = spec.get("description")
    store = services(request).store
    async with store.transaction():
        if await store.fetchone("SELECT 1 AS x FROM flavors WHERE name = ?", (name,)):
            raise Conflict(f"Flavor with name {name} already exists.")
        if await store.fetchone("SELECT 1 AS x FROM flavors WHERE id = ?", (flavor_id,)):
            raise Conflict(f"Flavor with ID {flavor_id} already exists.")
        await store.execute(
            "INSERT INTO flavors (id, name, ram, vcpus, disk, ephemeral, swap, rxtx_factor,"
            " is_public, disabled, description, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (
                flavor_id,
                name,
                ram,
                vcpus,
                disk,
                ephemeral,
                swap,
                rxtx,
                int(is_public),
                description,
                now_iso(),
            ),
        )
    row = await get_flavor(request, flavor_id)
    return web.json_response({"flavor": await detail_view(request, row)})


async def update_flavor(request: web.Request) -> web.Response:
    if not mv_at_least(request, V2_55):
        raise NotFound("The resource could not be found.")
    context(request).require_admin("os_compute_api:os-flavor-manage:update")
    body = await validated_body(
        request,
        {
            "type": "object",
            "properties": {
                "flavor": {
                    "type": "object",
                    "properties": {"description": _DESCRIPTION},
                    "required": ["description"],
                    "additionalProperties": False,
                }
            },
            "required": ["flavor"],
            "additionalProperties": False,
        },
    )
    row = await get_flavor(request, request.match_info["flavor_id"])
    await services(request).store.execute(
        "UPDATE flavors SET description = ? WHERE id = ?",
        (body["flavor"]["description"], row["id"]),
    )
    row = await get_flavor(request, row["id"])
    return web.json_response({"flavor": await detail_view(request, row)})


async def delete_flavor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-manage:delete")
    flavor_id = request.match_info["flavor_id"]
    count = await services(request).store.execute("DELETE FROM flavors WHERE id = ?", (flavor_id,))
    if not count:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return web.Response(status=202)


# ----------------------------------------------------------------- flavor access


async def _access_list(request: web.Request, flavor_id: str) -> list[dict[str, str]]:
    rows = await services(request).store.fetchall(
        "SELECT project_id FROM flavor_access WHERE flavor_id = ? ORDER BY project_id", (flavor_id,)
    )
    return [{"flavor_id": flavor_id, "tenant_id": r["project_id"]} for r in rows]


async def list_access(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-access")
    row = await get_flavor(request, request.match_info["flavor_id"])
    if row["is_public"]:
        raise NotFound("Access list not available for public flavors.")
    return web.json_response({"flavor_access": await _access_list(request, row["id"])})


_TENANT_ACTION = {
    "type": "object",
    "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
    "required": ["tenant"],
    "additionalProperties": False,
}


async def flavor_action(request: web.Request) -> web.Response:
    body = await validated_body(
        request,
        {
            "type": "object",
            "properties": {"addTenantAccess": _TENANT_ACTION, "removeTenantAccess": _TENANT_ACTION},
            "minProperties": 1,
            "maxProperties": 1,
        },
    )
    action = next(iter(body))
    if action not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest(f"There is no such action: {action}")
    context(request).require_admin(f"os_compute_api:os-flavor-access:{action}")
    row = await get_flavor(request, request.match_info["flavor_id"])
    tenant = body[action]["tenant"]
    store = services(request).store
    if action == "addTenantAccess":
        if row["is_public"]:
            raise Conflict("Can not add access to a public flavor.")
        exists = await store.fetchone(
            "SELECT 1 AS x FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
            (row["id"], tenant),
        )
        if exists:
            raise Conflict(
                f"Flavor access already exists for flavor {row['id']} and "
                f"project {tenant} combination."
            )
        await store.execute(
            "INSERT INTO flavor_access (flavor_id, project_id) VALUES (?, ?)", (row["id"], tenant)
        )
    else:
        count = await store.execute(
            "DELETE FROM flavor_access WHERE flavor_id = ? AND project_id = ?", (row["id"], tenant)
        )
        if not count:
            raise NotFound(f"Flavor access not found for {row['id']} / {tenant} combination.")
    return web.json_response({"flavor_access": await _access_list(request, row["id"])})


# ----------------------------------------------------------------- extra specs


def _spec_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | str):
        text = str(value)
        if len(text) > 255:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value too long.")
        return text
    raise BadRequest(
        f"Invalid input for field/attribute {key}. Value: {value}. "
        "must be a string, number or boolean"
    )


def _check_key(key: str) -> None:
    if not _SPEC_KEY_RE.match(key):
        raise BadRequest(f"Invalid input for field/attribute extra_specs. Invalid key {key!r}.")


async def list_extra_specs(request: web.Request) -> web.Response:
    row = await get_flavor(request, request.match_info["flavor_id"])
    return web.json_response({"extra_specs": await _extra_specs(request, row["id"])})


async def _store_specs(request: web.Request, flavor_id: str, specs: dict[str, str]) -> None:
    store = services(request).store
    async with store.transaction():
        for key, value in specs.items():
            await store.execute(
                "INSERT INTO flavor_extra_specs (flavor_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(flavor_id, key) DO UPDATE SET value = excluded.value",
                (flavor_id, key, value),
            )


async def create_extra_specs(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:create")
    body = await validated_body(
        request,
        {
            "type": "object",
            "properties": {"extra_specs": {"type": "object"}},
            "required": ["extra_specs"],
            "additionalProperties": False,
        },
    )
    row = await get_flavor(request, request.match_info["flavor_id"])
    specs: dict[str, str] = {}
    for key, value in body["extra_specs"].items():
        _check_key(key)
        specs[key] = _spec_value(key, value)
    await _store_specs(request, row["id"], specs)
    return web.json_response({"extra_specs": specs})


async def show_extra_spec(request: web.Request) -> web.Response:
    row = await get_flavor(request, request.match_info["flavor_id"])
    key = request.match_info["key"]
    specs = await _extra_specs(request, row["id"])
    if key not in specs:
        raise NotFound(f"Flavor {row['id']} has no extra specs with key {key}.")
    return web.json_response({key: specs[key]})


async def update_extra_spec(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:update")
    body = await validated_body(request, {"type": "object", "minProperties": 1})
    key = request.match_info["key"]
    row = await get_flavor(request, request.match_info["flavor_id"])
    if len(body) > 1:
        raise BadRequest("Request body contains too many items")
    if key not in body:
        raise BadRequest("Request body and URI mismatch")
    _check_key(key)
    value = _spec_value(key, body[key])
    await _store_specs(request, row["id"], {key: value})
    return web.json_response({key: value})


async def delete_extra_spec(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:delete")
    row = await get_flavor(request, request.match_info["flavor_id"])
    key = request.match_info["key"]
    count = await services(request).store.execute(
        "DELETE FROM flavor_extra_specs WHERE flavor_id = ? AND key = ?", (row["id"], key)
    )
    if not count:
        raise NotFound(f"Flavor {row['id']} has no extra specs with key {key}.")
    return web.Response(status=200)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/flavors"
    one = base + "/{flavor_id}"
    router.add_get(base, list_flavors)
    router.add_post(base, create_flavor)
    router.add_get(base + "/detail", list_flavors_detail)
    router.add_get(one + "/os-flavor-access", list_access)
    router.add_post(one + "/action", flavor_action)
    router.add_get(one + "/os-extra_specs", list_extra_specs)
    router.add_post(one + "/os-extra_specs", create_extra_specs)
    router.add_get(one + "/os-extra_specs/{key}", show_extra_spec)
    router.add_put(one + "/os-extra_specs/{key}", update_extra_spec)
    router.add_delete(one + "/os-extra_specs/{key}", delete_extra_spec)
    router.add_get(one, show_flavor)
    router.add_put(one, update_flavor)
    router.add_delete(one, delete_flavor)
