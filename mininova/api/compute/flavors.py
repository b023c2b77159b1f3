"""Compute API: /flavors (list, detail, show, create, update, delete).

Flavor access lives in `flavor_access.py`, extra specs in `flavor_extra_specs.py`; request
schemas in `schemas/flavors.py`, views in `views/flavors.py`, queries in
`mininova.store.flavors`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from mininova.api.compute.schemas import flavors as schemas
from mininova.api.compute.views import flavors as views
from mininova.api.compute.views.flavors import DETAIL_FIELDS
from mininova.api.context import context, microversion, mv_at_least, services
from mininova.api.errors import BadRequest
from mininova.api.microversions import V2_55, V2_61
from mininova.api.pagination import next_query, paginate
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.errors import Conflict, NotFound
from mininova.store import flavors as repo
from mininova.store.db import Row, Store
from mininova.timeutil import now_iso

__all__ = ["DETAIL_FIELDS", "find", "setup"]  # DETAIL_FIELDS: tests/api/test_microversions.py

_FLAVOR_ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


# ------------------------------------------------------------------------ domain functions


async def find(store: Store, flavor_id: str, project_id: str | None, is_admin: bool) -> Row:
    """The flavor if it exists and the caller may see it; NotFound otherwise."""
    row = await repo.accessible(store, str(flavor_id), project_id, is_admin=is_admin)
    if row is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return row


async def create(store: Store, values: dict[str, Any]) -> Row:
    """Create a flavor (409 when its name or id is taken); the new row."""
    async with store.transaction() as tx:
        await tx.lock("flavors")  # concurrent creates of one name: 409, not an integrity error
        if await repo.get_by_name(tx, values["name"]) is not None:
            raise Conflict(f"Flavor with name {values['name']} already exists.")
        if await repo.get(tx, values["id"]) is not None:
            raise Conflict(f"Flavor with ID {values['id']} already exists.")
        await repo.insert(tx, values)
    row = await repo.get(store, values["id"])
    assert row is not None
    return row


# ------------------------------------------------------------------------------ parsing


def _int_param(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid {name} filter [{value}]") from None
    if number < minimum:
        raise BadRequest(f"Invalid {name} filter [{value}]")
    return number


def _parse_is_public(value: str | None) -> bool | None:
    if value is None:
        return True
    text = value.strip().lower()
    if text == "none":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"Invalid is_public filter [{value}]")


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
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest("Invalid input for field/attribute os-flavor-access:is_public.")


def _create_values(spec: dict[str, Any]) -> dict[str, Any]:
    """The `flavors` row a validated POST /flavors body asks for."""
    flavor_id = spec.get("id")
    if flavor_id is None:
        flavor_id = str(uuid.uuid4())
    elif not isinstance(flavor_id, str):
        flavor_id = str(flavor_id)  # Nova stores a numeric id as its string
    if not _FLAVOR_ID_RE.match(flavor_id):
        raise BadRequest(
            f"Invalid input for field/attribute id. Value: {flavor_id}. Invalid flavor id."
        )
    return {
        "id": flavor_id,
        "name": spec["name"],
        "ram": _as_int(spec["ram"], "ram", 1),
        "vcpus": _as_int(spec["vcpus"], "vcpus", 1),
        "disk": _as_int(spec["disk"], "disk", 0),
        "ephemeral": _as_int(spec.get("OS-FLV-EXT-DATA:ephemeral"), "OS-FLV-EXT-DATA:ephemeral", 0),
        "swap": _as_int(spec.get("swap"), "swap", 0),
        "rxtx_factor": float(spec.get("rxtx_factor", 1.0)),
        "is_public": int(_as_bool(spec.get("os-flavor-access:is_public", True))),
        "disabled": 0,
        "description": spec.get("description"),
        "created_at": now_iso(),
    }


async def _list_rows(request: web.Request) -> tuple[list[Row], int | None]:
    ctx = context(request)
    q = request.query
    is_public = _parse_is_public(q.get("is_public")) if ctx.is_admin else True
    min_ram = _int_param(q["minRam"], "minRam") if "minRam" in q else None
    min_disk = _int_param(q["minDisk"], "minDisk") if "minDisk" in q else None
    sort_key = q.get("sort_key") or "flavorid"
    if sort_key not in repo.SORT_KEYS:
        raise BadRequest(f"Invalid sort_key [{sort_key}]")
    sort_dir = (q.get("sort_dir") or "asc").lower()
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort_dir [{q.get('sort_dir')}]")
    rows = await repo.list_flavors(
        services(request).store,
        project_id=ctx.project_id,
        is_public=is_public,
        include_disabled=ctx.is_admin,
        min_ram=min_ram,
        min_disk=min_disk,
        sort_key=sort_key,
        descending=sort_dir == "desc",
    )
    return paginate(rows, q, lambda r: r["id"], maximum=1000)


async def _requested(request: web.Request) -> Row:
    ctx = context(request)
    flavor_id = request.match_info["flavor_id"]
    return await find(services(request).store, flavor_id, ctx.project_id, ctx.is_admin)


# ----------------------------------------------------------------------------- handlers


def _list_body(
    request: web.Request, items: list[dict[str, Any]], rows: list[Row], limit: int | None, path: str
) -> dict[str, Any]:
    body: dict[str, Any] = {"flavors": items}
    if limit is not None and rows and len(rows) >= limit:
        query = next_query(request.query, rows[-1]["id"])
        body["flavors_links"] = views.next_links(services(request).base_url, path, query)
    return body


async def _detail(request: web.Request, row: Row) -> dict[str, Any]:
    svc = services(request)
    specs = await repo.extra_specs(svc.store, row["id"]) if mv_at_least(request, V2_61) else None
    return views.detail(row, microversion(request), svc.base_url, specs)


async def list_flavors(request: web.Request) -> web.Response:
    rows, limit = await _list_rows(request)
    mv, base = microversion(request), services(request).base_url
    items = [views.brief(r, mv, base) for r in rows]
    return json_response(_list_body(request, items, rows, limit, "flavors"))


async def list_flavors_detail(request: web.Request) -> web.Response:
    rows, limit = await _list_rows(request)
    svc, mv = services(request), microversion(request)
    specs: dict[str, dict[str, str]] = {}
    if mv_at_least(request, V2_61):
        specs = await repo.extra_specs_of(svc.store, [r["id"] for r in rows])
    items = [views.detail(r, mv, svc.base_url, specs.get(r["id"])) for r in rows]
    return json_response(_list_body(request, items, rows, limit, "flavors/detail"))


async def show_flavor(request: web.Request) -> web.Response:
    row = await _requested(request)
    return json_response({"flavor": await _detail(request, row)})


async def create_flavor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-manage:create")
    body = await validated_body(request, schemas.create(microversion(request)))
    row = await create(services(request).store, _create_values(body["flavor"]))
    return json_response({"flavor": await _detail(request, row)})


async def update_flavor(request: web.Request) -> web.Response:
    if not mv_at_least(request, V2_55):
        raise NotFound("The resource could not be found.")
    context(request).require_admin("os_compute_api:os-flavor-manage:update")
    body = await validated_body(request, schemas.UPDATE)
    row = await _requested(request)
    store = services(request).store
    await repo.set_description(store, row["id"], body["flavor"]["description"])
    row = await find(store, row["id"], None, True)
    return json_response({"flavor": await _detail(request, row)})


async def delete_flavor(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-manage:delete")
    flavor_id = request.match_info["flavor_id"]
    if not await repo.delete_flavor(services(request).store, flavor_id):
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return web.Response(status=202)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes (`/flavors/detail` before `/flavors/{flavor_id}`)."""
    base = prefix + "/flavors"
    one = base + "/{flavor_id}"
    router.add_get(base, list_flavors)
    router.add_post(base, create_flavor)
    router.add_get(base + "/detail", list_flavors_detail)
    router.add_get(one, show_flavor)
    router.add_put(one, update_flavor)
    router.add_delete(one, delete_flavor)
