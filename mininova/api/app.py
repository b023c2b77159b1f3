"""The aiohttp application: one middleware (request id, errors, auth, microversion), routes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from mininova.api import microversion, policy
from mininova.api.capability import check_capability
from mininova.api.context import CONTEXT, MICROVERSION, REQUEST_ID, SERVICES, RequestContext
from mininova.api.errors import ApiError, error_response_for, status_for
from mininova.api.responses import json_response
from mininova.api.services import Services
from mininova.api.validation import TOO_LARGE
from mininova.errors import DomainError
from mininova.identity.service import AuthFailed
from mininova.protocol.core import CAPABILITY_HEADER

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Paths reachable without a token (discovery documents, token creation, agents, consoles).
_PUBLIC_EXACT = {
    "/",
    "/identity",
    "/identity/",
    "/identity/v3",
    "/identity/v3/",
    "/compute",
    "/compute/",
    "/compute/v2.1",
    "/compute/v2.1/",
    "/compute/v2",
    "/compute/v2/",
    "/image",
    "/image/",
    "/networking",
    "/networking/",
    "/networking/v2.0",
    "/networking/v2.0/",
    "/healthcheck",
    "/openapi.json",
}
_PUBLIC_PREFIXES = ("/agent", "/console", "/ui", "/static")


def _is_public(request: web.Request) -> bool:
    path = request.path
    if policy.is_write(request.method, path):
        return False  # a write always needs a token (and a writing role)
    if path in _PUBLIC_EXACT or path.startswith(_PUBLIC_PREFIXES):
        return True
    return path.rstrip("/") == "/identity/v3/auth/tokens" and request.method == "POST"


def _render_error(request: web.Request, status: int, message: str) -> web.Response:
    return error_response_for(request.path, status, message)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Everything around a handler, in one coroutine (one frame per open websocket, too):
    request id, capability or Keystone token, the role rule, the microversion, errors."""
    request_id = "req-" + str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    path = request.path
    try:
        response = await _admitted(request, handler, path)
    except ApiError as exc:
        response = _render_error(request, exc.status, exc.message)
    except DomainError as exc:
        status = status_for(exc)
        if status is None:
            log.exception("unexpected error on %s %s", request.method, path)
            response = _render_error(request, 500, "Unexpected API Error. Please report this.")
        else:
            response = _render_error(request, status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400 or path.startswith(_PUBLIC_PREFIXES):
            raise
        message = exc.reason or "error"
        if exc.status == 413:  # request.read()/json() over client_max_size
            message = TOO_LARGE
        elif exc.status == 404:
            message = "The resource could not be found."
        elif exc.status == 405:
            message = "The method is not allowed for this resource."
        response = _render_error(request, exc.status, message)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, path)
        response = _render_error(request, 500, "Unexpected API Error. Please report this.")
    if not response.prepared:
        response.headers["x-openstack-request-id"] = request_id
        if path.startswith("/compute"):
            response.headers["x-compute-request-id"] = request_id
    return response


async def _admitted(request: web.Request, handler: Handler, path: str) -> web.StreamResponse:
    capability = request.headers.get(CAPABILITY_HEADER)
    if capability is not None and not path.startswith("/agent"):
        refused = await check_capability(request, capability)
        if refused is not None:
            return refused
    elif not _is_public(request):
        token = request.headers.get("X-Auth-Token")
        if not token:
            return _render_error(request, 401, "The request you have made requires authentication.")
        svc: Services = request.config_dict[SERVICES]
        try:
            info = await svc.identity.validate(token)
        except AuthFailed as exc:
            return _render_error(request, 401, str(exc))
        context = RequestContext(
            user_id=info.user_id,
            user_name=info.user_name,
            project_id=info.project_id,
            project_name=info.project_name,
            roles=[r["name"] for r in info.roles],
            request_id=request[REQUEST_ID],
            token=token,
        )
        request[CONTEXT] = context
        # Before the handler: a reader gets 403 even where the object does not exist.
        denied = policy.denial(request.method, path, context.roles)
        if denied is not None:
            return _render_error(request, 403, denied)
    if not path.startswith("/compute/v2.1"):
        return await handler(request)
    version = microversion.parse_headers(request.headers)
    request[MICROVERSION] = version
    response = await handler(request)
    if not response.prepared:
        text = microversion.fmt(version)
        response.headers["OpenStack-API-Version"] = f"compute {text}"
        response.headers["X-OpenStack-Nova-API-Version"] = text
        response.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
    return response


def build_app(services: Services) -> web.Application:
    from mininova.api import migration_disk, openapi
    from mininova.api.compute import routes as compute_routes
    from mininova.api.identity import routes as identity_routes
    from mininova.api.image import routes as image_routes
    from mininova.api.network import routes as network_routes

    # `client_max_size` bounds every body a handler reads whole (request.read/json/post);
    # image data and migration disks stream through `request.content` with their own caps.
    app = web.Application(
        middlewares=[api_middleware],
        client_max_size=max(1, int(services.config.max_request_body_size)),
    )
    app[SERVICES] = services
    identity_routes.setup(app)
    compute_routes.setup(app)
    image_routes.setup(app)
    network_routes.setup(app)
    migration_disk.setup(app)
    openapi.setup(app)
    app.router.add_get("/", _root)
    app.router.add_get("/healthcheck", _health)
    return app


async def _root(request: web.Request) -> web.Response:
    """The endpoints for API clients; a browser (asking for HTML) goes to the dashboard."""
    if "text/html" in request.headers.get("Accept", ""):
        raise web.HTTPFound("/ui/")
    svc: Services = request.config_dict[SERVICES]
    return json_response(
        {
            "name": "mininova",
            "identity": svc.url("/identity/v3"),
            "compute": svc.url("/compute/v2.1"),
            "image": svc.url("/image"),
        }
    )


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="OK")
