"""POST /servers: validate the request, record the instances atomically, cast the build."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import secrets
import uuid as uuidlib
from typing import Any

from aiohttp import web

from mininova import instance_states as st
from mininova import quota
from mininova.api.compute import server_groups
from mininova.api.compute.server_views import links
from mininova.api.context import REQUEST_ID, context, mv_at_least, services
from mininova.api.errors import BadRequest, Forbidden
from mininova.api.microversions import V2_37, V2_57
from mininova.api.validation import validate, validated_body
from mininova.errors import QuotaExceeded
from mininova.store.db import dumps
from mininova.store.instances import start_action
from mininova.timeutil import now_iso

_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^(?![\s\u00a0])(?!.*[\s\u00a0]$).*$",
}
_META = {
    "type": "object",
    "maxProperties": 128,
    "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}

SERVER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["server"],
    "properties": {
        "server": {
            "type": "object",
            "required": ["name", "flavorRef"],
            "properties": {
                "name": _NAME,
                "imageRef": {"type": "string"},
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "key_name": {"type": ["string", "null"]},
                "metadata": _META,
                "min_count": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
                "max_count": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
                "return_reservation_id": {"type": ["boolean", "string"]},
                "networks": {
                    "oneOf": [
                        {"type": "string", "enum": ["auto", "none"]},
                        {"type": "array", "items": {"type": "object"}},
                    ]
                },
                "accessIPv4": {"type": ["string", "null"]},
                "accessIPv6": {"type": ["string", "null"]},
                "adminPass": {"type": "string"},
                "user_data": {"type": ["string", "null"], "maxLength": 65535},
                "availability_zone": {"type": ["string", "null"], "maxLength": 255},
                "config_drive": {"type": ["boolean", "string", "null"]},
                "block_device_mapping_v2": {"type": "array", "items": {"type": "object"}},
                "security_groups": {"type": "array", "items": {"type": "object"}},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "description": {"type": ["string", "null"], "maxLength": 255},
                "tags": {"type": "array", "items": {"type": "string"}},
                "hostname": {"type": "string", "maxLength": 255},
                "personality": {"type": "array"},
                "trusted_image_certificates": {"type": ["array", "null"]},
                "host": {"type": "string"},
                "hypervisor_hostname": {"type": "string"},
            },
            "additionalProperties": False,
        },
        "os:scheduler_hints": {"type": "object"},
        "OS-SCH-HNT:scheduler_hints": {"type": "object"},
    },
    "additionalProperties": False,
}


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


def sanitize_hostname(name: str) -> str:
    """Nova's rule: lower case, runs of invalid characters → '-', at most 63 characters."""
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-.")
    return host[:63].rstrip("-") or "server"


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


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


def _check_ip(value: Any, version: int, field: str) -> str | None:
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


async def _fit_quota(
    store: Any, project_id: str, min_count: int, max_count: int, flavor: dict[str, Any]
) -> int:
    """As many instances as the quota allows between min_count and max_count."""
    try:
        await quota.check_instance_quota(
            store, project_id, max_count, flavor["vcpus"], flavor["ram"]
        )
        return max_count
    except QuotaExceeded:
        if min_count == max_count:
            raise
    await quota.check_instance_quota(store, project_id, min_count, flavor["vcpus"], flavor["ram"])
    return min_count


async def _group_from_hints(
    store: Any, hints: dict[str, Any], project_id: str, is_admin: bool
) -> dict[str, Any] | None:
    """The server group a `group` scheduler hint names: it must exist and be visible."""
    if "group" not in hints:
        return None
    group_id = hints["group"]
    if isinstance(group_id, list) and len(group_id) == 1:
        group_id = group_id[0]
    if not isinstance(group_id, str) or not group_id:
        raise BadRequest(
            f"Invalid input for field/attribute group. Value: {group_id!r}. "
            "It is not a server group id"
        )
    group = await server_groups.find_visible(store, group_id, project_id, is_admin)
    if group is None:
        raise BadRequest(f"Instance group {group_id} could not be found.")
    return group


async def _check_member_quota(store: Any, group: dict[str, Any], count: int) -> None:
    """server_group_members: the group's project may not have more members than allowed."""
    limit = (await quota.get_limits(store, group["project_id"]))["server_group_members"]
    if limit < 0:
        return
    row = await store.fetchone(
        "SELECT COUNT(*) AS n FROM server_group_members WHERE group_id = ?", (group["id"],)
    )
    if int((row or {}).get("n") or 0) + count > limit:
        raise Forbidden("Quota exceeded, too many servers in group")


async def create_server(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    body = await validated_body(request, SERVER_SCHEMA)
    server = body["server"]
    store = svc.store

    if "networks" not in server and mv_at_least(request, V2_37):
        server["networks"] = "auto"  # documented choice: the SDK proxy omits it
    if server.get("personality") and mv_at_least(request, V2_57):
        validate(server, {"properties": {"personality": {"not": {}}}})
    image_ref = _image_from_request(server)
    access_v4 = _check_ip(server.get("accessIPv4"), 4, "accessIPv4")
    access_v6 = _check_ip(server.get("accessIPv6"), 6, "accessIPv6")
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

    image = await store.fetchone("SELECT * FROM images WHERE id = ?", (image_ref,))
    visible = image is not None and (
        ctx.is_admin
        or image["owner"] == ctx.project_id
        or image["visibility"] in ("public", "community")
    )
    if not visible or image is None:
        raise BadRequest(f"Image {image_ref} could not be found.")
    if image["status"] != "active":
        raise BadRequest(f"Image {image_ref} is not active.")

    flavor_ref = str(server["flavorRef"]).rsplit("/", 1)[-1]
    flavor = await store.fetchone("SELECT * FROM flavors WHERE id = ?", (flavor_ref,))
    if flavor is not None and not flavor["is_public"] and not ctx.is_admin:
        access = await store.fetchone(
            "SELECT 1 AS x FROM flavor_access WHERE flavor_id = ? AND project_id = ?",
            (flavor_ref, ctx.project_id),
        )
        flavor = flavor if access else None
    if flavor is None:
        raise BadRequest(f"Flavor {flavor_ref} could not be found.")
    if flavor["disabled"]:
        raise BadRequest(f"Flavor {flavor_ref} is disabled.")
    if flavor["ram"] < (image["min_ram"] or 0):
        raise BadRequest("Flavor's memory is too small for requested image.")
    if flavor["disk"] and flavor["disk"] < (image["min_disk"] or 0):
        raise BadRequest("Flavor's disk is too small for requested image.")
    specs = await store.fetchall(
        "SELECT key, value FROM flavor_extra_specs WHERE flavor_id = ?", (flavor_ref,)
    )
    flavor_snapshot = {
        "id": flavor["id"],
        "name": flavor["name"],
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "ephemeral": flavor["ephemeral"],
        "swap": flavor["swap"],
        "extra_specs": {s["key"]: s["value"] for s in specs},
    }

    key_name = server.get("key_name")
    key_data = None
    if key_name:
        key = await store.fetchone(
            "SELECT public_key FROM keypairs WHERE user_id = ? AND name = ?",
            (ctx.user_id, key_name),
        )
        if key is None:
            raise BadRequest("Invalid key_name provided.")
        key_data = key["public_key"]

    zone = server.get("availability_zone") or None
    if zone:
        zone = zone.split(":", 1)[0] or None
    if zone:
        known = await store.fetchone(
            "SELECT 1 AS x FROM compute_nodes WHERE zone = ? LIMIT 1", (zone,)
        )
        if known is None:
            raise BadRequest(f"The requested availability zone is not available: {zone}")

    hints = body.get("OS-SCH-HNT:scheduler_hints") or body.get("os:scheduler_hints") or {}
    group = await _group_from_hints(store, hints, ctx.project_id, ctx.is_admin)
    force_host = server.get("host")
    if force_host:
        ctx.require_admin("host in server create")
        hints = {**hints, "force_host": force_host}

    count = await _fit_quota(store, ctx.project_id, min_count, max_count, flavor)
    metadata = server.get("metadata") or {}
    reservation_id = "r-" + secrets.token_hex(4)
    admin_pass = server.get("adminPass") or secrets.token_urlsafe(9)
    config_drive = "True" if server.get("config_drive") not in (None, False, "", "False") else ""
    now = now_iso()
    uuids = []
    async with store.transaction():
        if group is not None:
            await _check_member_quota(store, group, count)
        for index in range(count):
            uuid = str(uuidlib.uuid4())
            name = server["name"] if count == 1 else f"{server['name']}-{index + 1}"
            hostname = server.get("hostname") or name
            await store.execute(
                "INSERT INTO instances (uuid, name, hostname, project_id, user_id, image_ref,"
                " flavor_id, flavor, key_name, key_data, user_data, metadata, vm_state,"
                " task_state, power_state, availability_zone, access_ip_v4, access_ip_v6,"
                " mac_address, config_drive, reservation_id, launch_index, scheduler_hints,"
                " description, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    uuid,
                    name,
                    sanitize_hostname(hostname),
                    ctx.project_id,
                    ctx.user_id,
                    image_ref,
                    flavor["id"],
                    dumps(flavor_snapshot),
                    key_name,
                    key_data,
                    user_data,
                    dumps(metadata),
                    st.BUILDING,
                    st.SCHEDULING,
                    st.NOSTATE,
                    zone,
                    access_v4,
                    access_v6,
                    random_mac(),
                    config_drive,
                    reservation_id,
                    index,
                    dumps(hints),
                    server.get("description"),
                    now,
                    now,
                ),
            )
            if group is not None:
                await store.execute(
                    "INSERT INTO server_group_members (group_id, instance_uuid) VALUES (?, ?)",
                    (group["id"], uuid),
                )
            await start_action(
                store, uuid, "create", request[REQUEST_ID], ctx.user_id, ctx.project_id
            )
            uuids.append(uuid)
    svc.conductor.build_instances(uuids)

    wants_reservation = str(server.get("return_reservation_id", "")).lower() in ("true", "1")
    if wants_reservation:
        return web.json_response({"reservation_id": reservation_id}, status=202)
    first = uuids[0]
    view = {
        "id": first,
        "links": links(svc.base_url, "servers", first),
        "OS-DCF:diskConfig": server.get("OS-DCF:diskConfig", "MANUAL"),
        "security_groups": [{"name": "default"}],
        "adminPass": admin_pass,
    }
    response = web.json_response({"server": view}, status=202)
    response.headers["Location"] = svc.url(f"/compute/v2.1/servers/{first}")
    return response
