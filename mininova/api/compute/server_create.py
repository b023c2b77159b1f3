"""POST /servers: parse the request; `mininova.compute.api.create_servers` does the rest."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import uuid as uuidlib
from typing import Any

from aiohttp import web

from mininova.api.compute.schemas import servers as schemas
from mininova.api.compute.views import servers as views
from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest
from mininova.api.microversions import V2_37, V2_57
from mininova.api.responses import json_response
from mininova.api.validation import validate, validated_body
from mininova.compute import api as compute


def _count(value: Any, field: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise BadRequest(
            f"Invalid input for field/attribute {field}. "
            f"Value: {value}. {value!r} is not an integer"
        ) from None
    if count < 1:
        raise BadRequest(
            f"Invalid input for field/attribute {field}. "
            f"Value: {value}. {count} is less than the minimum of 1"
        )
    return count


def _image_from_request(server: dict[str, Any]) -> str:
    image_ref = server.get("imageRef")
    if not image_ref:
        for bdm in server.get("block_device_mapping_v2") or []:
            if (
                bdm.get("source_type") == "image"
                and str(bdm.get("boot_index")) == "0"
                and bdm.get("destination_type", "local") == "local"
            ):
                image_ref = bdm.get("uuid")
    if not image_ref:
        raise BadRequest("Missing imageRef attribute; booting from volume is not supported.")
    image_ref = str(image_ref).rsplit("/", 1)[-1]
    try:
        uuidlib.UUID(image_ref)
    except ValueError:
        raise BadRequest("Invalid imageRef provided.") from None
    for bdm in server.get("block_device_mapping_v2") or []:
        if bdm.get("destination_type") == "volume" or bdm.get("source_type") in (
            "volume",
            "snapshot",
        ):
            raise BadRequest("Block device mappings to volumes are not supported.")
    return image_ref


def check_ip(value: Any, version: int, field: str) -> str | None:
    """An accessIPv4/v6 value normalised (None when empty); 400 when not such an address."""
    if value in (None, ""):
        return None
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise BadRequest(
            f"Invalid input for field/attribute {field}. "
            f"Value: {value}. {value!r} is not a 'ipv{version}'"
        )
    return str(addr)


def _security_group_refs(given: Any) -> list[str]:
    """The names (or ids) of the request's `security_groups: [{"name": …}]`."""
    refs = []
    for item in given or ():
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("Invalid input for field/attribute security_groups.")
        refs.append(name)
    return refs


def parse_create(request: web.Request, body: dict[str, Any]) -> compute.ServerCreate:
    """The checked body of POST /servers as the compute API's request."""
    server = body["server"]
    if "networks" not in server and mv_at_least(request, V2_37):
        server["networks"] = "auto"  # documented choice: the SDK proxy omits it
    if server.get("personality") and mv_at_least(request, V2_57):
        validate(server, schemas.NO_PERSONALITY)
    image_ref = _image_from_request(server)
    access_v4 = check_ip(server.get("accessIPv4"), 4, "accessIPv4")
    access_v6 = check_ip(server.get("accessIPv6"), 6, "accessIPv6")
    min_count = _count(server.get("min_count", 1), "min_count")
    max_count = _count(server.get("max_count", min_count), "max_count")
    if min_count > max_count:
        raise BadRequest("min_count must be <= max_count")
    user_data = server.get("user_data")
    if user_data:
        try:
            base64.b64decode(user_data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("User data needs to be valid base 64.") from None
    hints = body.get("OS-SCH-HNT:scheduler_hints") or body.get("os:scheduler_hints") or {}
    return compute.ServerCreate(
        name=server["name"],
        image_ref=image_ref,
        flavor_ref=str(server["flavorRef"]).rsplit("/", 1)[-1],
        min_count=min_count,
        max_count=max_count,
        key_name=server.get("key_name") or None,
        metadata=server.get("metadata") or {},
        access_ip_v4=access_v4,
        access_ip_v6=access_v6,
        user_data=user_data,
        availability_zone=server.get("availability_zone") or None,
        scheduler_hints=dict(hints),
        host=server.get("host") or None,
        hypervisor_hostname=server.get("hypervisor_hostname") or None,
        hostname=server.get("hostname") or None,
        description=server.get("description"),
        config_drive=server.get("config_drive") not in (None, False, "", "False"),
        networks=server.get("networks"),
        security_groups=_security_group_refs(server.get("security_groups")),
    )


async def create_server(request: web.Request) -> web.Response:
    svc = services(request)
    body = await validated_body(request, schemas.CREATE)
    spec = parse_create(request, body)
    created = await compute.create_servers(svc.store, svc.conductor, context(request), spec)
    server = body["server"]
    if str(server.get("return_reservation_id", "")).lower() in ("true", "1"):
        return json_response({"reservation_id": created.reservation_id}, status=202)
    first = created.uuids[0]
    names = (await compute.security_group_names(svc.store, [first]))[first]
    view = views.created_view(
        svc.base_url,
        first,
        server.get("OS-DCF:diskConfig", "MANUAL"),
        server.get("adminPass") or secrets.token_urlsafe(9),
        names,
    )
    response = json_response({"server": view}, status=202)
    response.headers["Location"] = svc.url(f"/compute/v2.1/servers/{first}")
    return response
