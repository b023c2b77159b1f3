"""POST /servers/{id}/action: power actions, lock, reset state, console output, snapshot.

Each handler checks its argument and calls one `mininova.compute.api` operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mininova.api.compute import admin_actions, migrations, security_groups, server_rebuild, shelve
from mininova.api.compute.schemas import servers as schemas
from mininova.api.compute.servers import get_server
from mininova.api.context import context, mv_at_least, services
from mininova.api.errors import BadRequest
from mininova.api.microversions import V2_45
from mininova.api.responses import json_response
from mininova.api.validation import json_body, validate
from mininova.compute import api as compute
from mininova.compute import soft_delete
from mininova.image.limits import ImageLimits
from mininova.store.db import Row

ActionHandler = Callable[[web.Request, Row, Any], Awaitable[web.Response]]


async def _state_action(request: web.Request, inst: Row, action: str) -> web.Response:
    svc = services(request)
    await compute.run_action(svc.store, svc.conductor, context(request), inst, action)
    return web.Response(status=202)


def _simple(action: str) -> ActionHandler:
    async def handler(request: web.Request, inst: Row, _body: Any) -> web.Response:
        return await _state_action(request, inst, action)

    return handler


async def _reboot(request: web.Request, inst: Row, body: Any) -> web.Response:
    validate(body, schemas.REBOOT)
    hard = body["type"].upper() == "HARD"
    return await _state_action(request, inst, "reboot_hard" if hard else "reboot")


async def _lock(request: web.Request, inst: Row, body: Any) -> web.Response:
    reason = body.get("locked_reason") if isinstance(body, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
        raise BadRequest("Invalid input for field/attribute locked_reason.")
    await compute.lock(services(request).store, context(request), inst, reason)
    return web.Response(status=202)


async def _unlock(request: web.Request, inst: Row, _body: Any) -> web.Response:
    await compute.unlock(services(request).store, context(request), inst)
    return web.Response(status=202)


async def _reset_state(request: web.Request, inst: Row, body: Any) -> web.Response:
    context(request).require_admin("os_compute_api:os-admin-actions:reset_state")
    validate(body, schemas.RESET_STATE)
    await compute.reset_state(services(request).store, context(request), inst, body["state"])
    return web.Response(status=202)


async def _console_output(request: web.Request, inst: Row, body: Any) -> web.Response:
    validate(body, schemas.CONSOLE_OUTPUT)
    raw = (body or {}).get("length")
    length = int(raw) if raw is not None else None
    if length is not None and length < -1:
        raise BadRequest("Invalid input for field/attribute length. Value must be >= -1.")
    if length == -1:
        length = None
    output = await compute.console_output(services(request).conductor, inst, length)
    return json_response({"output": output})


async def _vnc_console(request: web.Request, inst: Row, body: Any) -> web.Response:
    from mininova.api.compute import consoles

    return await consoles.get_vnc_console(request, inst, body)


async def _create_image(request: web.Request, inst: Row, body: Any) -> web.Response:
    """Snapshot: the Glance record exists (queued) before the 202; the agent uploads it."""
    svc = services(request)
    validate(body, schemas.CREATE_IMAGE)
    image_id = await compute.create_image(
        svc.store,
        svc.conductor,
        context(request),
        inst,
        body["name"],
        body.get("metadata", {}),
        ImageLimits.from_config(svc.config),
    )
    location = svc.url(f"/image/v2/images/{image_id}")
    if mv_at_least(request, V2_45):
        return json_response({"image_id": image_id}, status=202, headers={"Location": location})
    return web.Response(status=202, headers={"Location": location})


async def _restore(request: web.Request, inst: Row, _body: Any) -> web.Response:
    svc = services(request)
    await soft_delete.restore_server(svc.store, svc.conductor, context(request), inst)
    return web.Response(status=202)


async def _force_delete(request: web.Request, inst: Row, _body: Any) -> web.Response:
    svc = services(request)
    await soft_delete.force_delete_server(svc.store, svc.conductor, context(request), inst)
    return web.Response(status=202)


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
    "rebuild": server_rebuild.rebuild,
    "addSecurityGroup": security_groups.add_security_group,
    "resize": migrations.resize,
    "migrate": migrations.migrate,
    "confirmResize": migrations.confirm_resize,
    "revertResize": migrations.revert_resize,
    "removeSecurityGroup": security_groups.remove_security_group,
    "injectNetworkInfo": admin_actions.inject_network_info,
    "restore": _restore,
    "forceDelete": _force_delete,
    "shelve": shelve.shelve,
    "shelveOffload": shelve.shelve_offload,
    "unshelve": shelve.unshelve,
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
