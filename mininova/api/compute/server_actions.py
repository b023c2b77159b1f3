"""POST /servers/{id}/action: power actions, lock, reset state, console output."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mininova import instance_states as st
from mininova.api.compute.servers import check_locked, get_server
from mininova.api.context import REQUEST_ID, context, mv_at_least, services
from mininova.api.errors import BadRequest, Conflict
from mininova.api.microversions import V2_45
from mininova.api.validation import json_body, validate
from mininova.image import store_ops
from mininova.protocol import ProtocolError
from mininova.store import instances as db

ActionHandler = Callable[[web.Request, dict[str, Any], Any], Awaitable[web.Response]]

_NOVA_ACTION_NAMES = {
    "stop": "stop",
    "start": "start",
    "reboot": "reboot",
    "reboot_hard": "reboot",
    "pause": "pause",
    "unpause": "unpause",
    "suspend": "suspend",
    "resume": "resume",
}


async def _state_action(request: web.Request, inst: dict[str, Any], action: str) -> web.Response:
    svc, ctx = services(request), context(request)
    check_locked(request, inst)
    try:
        spec = st.check_action(action, inst["vm_state"], inst["task_state"])
    except st.InvalidState as exc:
        raise Conflict(f"{exc}") from None
    guarded = await db.update(
        svc.store, inst["uuid"], expect_task_state=None, task_state=spec.task_state
    )
    if not guarded:
        raise Conflict(f"Instance {inst['uuid']} is busy; try again.")
    await db.start_action(
        svc.store,
        inst["uuid"],
        _NOVA_ACTION_NAMES[action],
        request[REQUEST_ID],
        ctx.user_id,
        ctx.project_id,
    )
    svc.conductor.run_action(inst["uuid"], action)
    return web.Response(status=202)


def _simple(action: str) -> ActionHandler:
    async def handler(request: web.Request, inst: dict[str, Any], _body: Any) -> web.Response:
        return await _state_action(request, inst, action)

    return handler


async def _reboot(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    validate(
        body,
        {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}
            },
            "additionalProperties": False,
        },
    )
    hard = body["type"].upper() == "HARD"
    return await _state_action(request, inst, "reboot_hard" if hard else "reboot")


async def _lock(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    ctx = context(request)
    reason = body.get("locked_reason") if isinstance(body, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
        raise BadRequest("Invalid input for field/attribute locked_reason.")
    await db.update(
        services(request).store,
        inst["uuid"],
        locked=1,
        locked_by="admin" if ctx.is_admin else "owner",
        locked_reason=reason,
    )
    return web.Response(status=202)


async def _unlock(request: web.Request, inst: dict[str, Any], _body: Any) -> web.Response:
    ctx = context(request)
    if inst["locked"] and inst["locked_by"] == "admin" and not ctx.is_admin:
        raise Conflict(f"Instance {inst['uuid']} was locked by an administrator.")
    await db.update(
        services(request).store, inst["uuid"], locked=0, locked_by=None, locked_reason=None
    )
    return web.Response(status=202)


async def _reset_state(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    context(request).require_admin("os_compute_api:os-admin-actions:reset_state")
    validate(
        body,
        {
            "type": "object",
            "required": ["state"],
            "properties": {"state": {"type": "string", "enum": ["active", "error"]}},
            "additionalProperties": False,
        },
    )
    await db.update(services(request).store, inst["uuid"], vm_state=body["state"], task_state=None)
    return web.Response(status=202)


async def _console_output(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    validate(
        body,
        {
            "type": ["object", "null"],
            "properties": {
                "length": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"}
            },
        },
    )
    raw = (body or {}).get("length")
    length = int(raw) if raw is not None else None
    if length is not None and length < -1:
        raise BadRequest("Invalid input for field/attribute length. Value must be >= -1.")
    if length == -1:
        length = None
    if inst["vm_state"] == st.BUILDING or not inst["host"]:
        raise Conflict(f"Instance {inst['uuid']} is not ready yet.")
    try:
        output = await services(request).conductor.console_output(inst["uuid"], length, timeout=40)
    except ProtocolError as exc:
        raise Conflict(f"Console output is unavailable: {exc.message}") from None
    return web.json_response({"output": output})


async def _vnc_console(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    from mininova.api.compute import consoles

    return await consoles.get_vnc_console(request, inst, body)


async def _create_image(request: web.Request, inst: dict[str, Any], body: Any) -> web.Response:
    """Snapshot: the Glance record exists (queued) before the 202; the agent uploads it."""
    svc, ctx = services(request), context(request)
    validate(
        body,
        {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "metadata": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 255},
                },
            },
            "additionalProperties": False,
        },
    )
    if inst["task_state"] is not None or inst["vm_state"] not in st.SNAPSHOT_ALLOWED:
        raise Conflict(
            f"Cannot 'createImage' instance {inst['uuid']} while it is in "
            f"vm_state {inst['vm_state']} / task_state {inst['task_state']}"
        )
    if not await db.update(
        svc.store, inst["uuid"], expect_task_state=None, task_state=st.IMAGE_SNAPSHOT
    ):
        raise Conflict(f"Instance {inst['uuid']} is busy; try again.")
    properties = {
        **body.get("metadata", {}),
        "instance_uuid": inst["uuid"],
        "image_type": "snapshot",
        "base_image_ref": inst["image_ref"],
    }
    image = await store_ops.create_image_record(
        svc.store,
        owner=inst["project_id"],
        name=body["name"],
        disk_format="qcow2",
        visibility="private",
        min_disk=int(inst["flavor"].get("disk") or 0),
        properties=properties,
    )
    await db.start_action(
        svc.store, inst["uuid"], "createImage", request[REQUEST_ID], ctx.user_id, ctx.project_id
    )
    svc.conductor.snapshot_instance(inst["uuid"], image["id"])
    location = svc.url(f"/image/v2/images/{image['id']}")
    if mv_at_least(request, V2_45):
        return web.json_response(
            {"image_id": image["id"]}, status=202, headers={"Location": location}
        )
    return web.Response(status=202, headers={"Location": location})


ACTIONS: dict[str, ActionHandler] = {
    "os-stop": _simple("stop"),
    "os-start": _simple("start"),
    "pause": _simple("pause"),
    "unpause": _simple("unpause"),
    "suspend": _simple("suspend"),
    "resume": _simple("resume"),
    "reboot": _reboot,
    "lock": _lock,
    "unlock": _unlock,
    "os-resetState": _reset_state,
    "os-getConsoleOutput": _console_output,
    "os-getVNCConsole": _vnc_console,
    "createImage": _create_image,
}


async def server_action(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("The action body must be an object with exactly one action.")
    ((name, args),) = body.items()
    handler = ACTIONS.get(name)
    if handler is None:
        raise BadRequest(f"There is no such action: {name}")
    inst = await get_server(request)
    return await handler(request, inst, args)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_post(prefix + "/servers/{server_id}/action", server_action)
