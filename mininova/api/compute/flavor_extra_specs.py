"""Compute API: a flavor's extra specs (/flavors/{id}/os-extra_specs[/{key}])."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mininova.api.compute import flavors
from mininova.api.compute.schemas import flavor_extra_specs as schemas
from mininova.api.compute.views import flavor_extra_specs as views
from mininova.api.context import context, services
from mininova.api.errors import BadRequest
from mininova.api.responses import json_response
from mininova.api.validation import validated_body
from mininova.errors import NotFound
from mininova.store import flavors as repo
from mininova.store.db import Row

_SPEC_KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


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


async def _flavor(request: web.Request) -> Row:
    ctx = context(request)
    flavor_id = request.match_info["flavor_id"]
    return await flavors.find(services(request).store, flavor_id, ctx.project_id, ctx.is_admin)


async def list_extra_specs(request: web.Request) -> web.Response:
    row = await _flavor(request)
    specs = await repo.extra_specs(services(request).store, row["id"])
    return json_response(views.extra_specs(specs))


async def create_extra_specs(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:create")
    body = await validated_body(request, schemas.CREATE)
    row = await _flavor(request)
    specs: dict[str, str] = {}
    for key, value in body["extra_specs"].items():
        _check_key(key)
        specs[key] = _spec_value(key, value)
    await repo.set_extra_specs(services(request).store, row["id"], specs)
    return json_response(views.extra_specs(specs))


async def show_extra_spec(request: web.Request) -> web.Response:
    row = await _flavor(request)
    key = request.match_info["key"]
    specs = await repo.extra_specs(services(request).store, row["id"])
    if key not in specs:
        raise NotFound(f"Flavor {row['id']} has no extra specs with key {key}.")
    return json_response(views.extra_spec(key, specs[key]))


async def update_extra_spec(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:update")
    body = await validated_body(request, schemas.UPDATE)
    key = request.match_info["key"]
    row = await _flavor(request)
    if len(body) > 1:
        raise BadRequest("Request body contains too many items")
    if key not in body:
        raise BadRequest("Request body and URI mismatch")
    _check_key(key)
    value = _spec_value(key, body[key])
    await repo.set_extra_specs(services(request).store, row["id"], {key: value})
    return json_response(views.extra_spec(key, value))


async def delete_extra_spec(request: web.Request) -> web.Response:
    context(request).require_admin("os_compute_api:os-flavor-extra-specs:delete")
    row = await _flavor(request)
    key = request.match_info["key"]
    if not await repo.delete_extra_spec(services(request).store, row["id"], key):
        raise NotFound(f"Flavor {row['id']} has no extra specs with key {key}.")
    return web.Response(status=200)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    base = prefix + "/flavors/{flavor_id}/os-extra_specs"
    router.add_get(base, list_extra_specs)
    router.add_post(base, create_extra_specs)
    router.add_get(base + "/{key}", show_extra_spec)
    router.add_put(base + "/{key}", update_extra_spec)
    router.add_delete(base + "/{key}", delete_extra_spec)
