"""GET /openapi.json: an OpenAPI 3.1 document of the whole HTTP API, built from the app's router.

Paths and methods come from `app.router.routes()` (aiohttp's `{name}` segments become path
parameters), so a new route is in the document without a line here. Request bodies are the very
schema objects the handlers validate with (`REQUEST_SCHEMAS`; for microversioned schemas the
one of the newest microversion, `microversions.MAX`); `POST /servers/{id}/action` and the
legacy `PUT /os-services/{action}` get a `oneOf` with one branch per action. Bodies a handler
checks by hand (no schema object) are documented with a loose `HAND_CHECKED` shape.

Rules for the rest:
- internal routes (agents' websockets and CA, the console proxy, TCP tunnels, the dashboard,
  migration disks) are listed with the tag `internal` and `x-internal: true`; they are not
  OpenStack APIs and fuzzers skip them;
- responses: the success class (`2XX`, `300` for Glance's versions document) and the error
  statuses with the error body of the service that owns the path (`api.errors`);
- security: the `X-Auth-Token` header, except on the paths the middleware lets through
  without a token (version documents, token creation, this document).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mininova.api import app as api_app
from mininova.api import policy
from mininova.api.compute import migrations as compute_migrations
from mininova.api.compute import server_actions
from mininova.api.compute.schemas import (
    flavor_access,
    flavor_extra_specs,
    flavors,
    keypairs,
    quota_classes,
    quota_sets,
    rebuild,
    server_groups,
)
from mininova.api.compute.schemas import servers as server_schemas
from mininova.api.compute.schemas import services as service_schemas
from mininova.api.compute.schemas import shelve as shelve_schemas
from mininova.api.identity import schemas as identity
from mininova.api.image import schemas as image
from mininova.api.microversions import MAX
from mininova.api.network.schemas import floatingips, networks, security_groups, subnets
from mininova.api.responses import json_response

PATH = "/openapi.json"
INTERNAL_PREFIXES = ("/agent", "/console", "/tunnel", "/ui", "/migration-disks")
_C = "/compute/v2.1"
_N = "/networking/v2.0"
_I = "/identity/v3"

# (method, canonical path) → the schema object the handler validates the whole body with.
REQUEST_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", _I + "/auth/tokens"): identity.AUTH,
    ("POST", _I + "/projects"): identity.PROJECT_CREATE,
    ("PATCH", _I + "/projects/{project_id}"): identity.PROJECT_UPDATE,
    ("PUT", _I + "/projects/{project_id}/tags"): identity.PROJECT_TAGS_UPDATE,
    ("POST", _I + "/users"): identity.USER_CREATE,
    ("PATCH", _I + "/users/{user_id}"): identity.USER_UPDATE,
    ("POST", _C + "/servers"): server_schemas.CREATE,
    ("PUT", _C + "/servers/{server_id}"): server_schemas.UPDATE,
    ("PUT", _C + "/servers/{server_id}/metadata"): server_schemas.METADATA_BODY,
    ("POST", _C + "/servers/{server_id}/metadata"): server_schemas.METADATA_BODY,
    ("PUT", _C + "/servers/{server_id}/metadata/{key}"): server_schemas.METADATA_ITEM_BODY,
    ("POST", _C + "/os-server-groups"): server_groups.create(MAX),
    ("POST", _C + "/flavors"): flavors.create(MAX),
    ("PUT", _C + "/flavors/{flavor_id}"): flavors.UPDATE,
    ("POST", _C + "/flavors/{flavor_id}/action"): flavor_access.ACTION,
    ("POST", _C + "/flavors/{flavor_id}/os-extra_specs"): flavor_extra_specs.CREATE,
    ("PUT", _C + "/flavors/{flavor_id}/os-extra_specs/{key}"): flavor_extra_specs.UPDATE,
    ("POST", _C + "/os-keypairs"): keypairs.create(MAX),
    ("PUT", _C + "/os-quota-sets/{project_id}"): quota_sets.update_for(MAX),
    ("PUT", _C + "/os-quota-class-sets/{class_name}"): quota_classes.update_for(MAX),
    ("POST", "/image/v2/images"): image.CREATE,
    ("PATCH", "/image/v2/images/{image_id}"): image.PATCH,
    ("POST", _N + "/networks"): networks.CREATE,
    ("POST", _N + "/subnets"): subnets.CREATE,
    ("POST", _N + "/floatingips"): floatingips.CREATE,
    ("PUT", _N + "/floatingips/{floatingip_id}"): floatingips.UPDATE,
    ("POST", _N + "/security-groups"): security_groups.CREATE_GROUP,
    ("PUT", _N + "/security-groups/{group_id}"): security_groups.UPDATE_GROUP,
    ("POST", _N + "/security-group-rules"): security_groups.CREATE_RULE,
}

# The argument schema each server action validates with (newest microversion); actions
# without one take any value (Nova's `null`).
ACTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "reboot": server_schemas.REBOOT,
    "os-resetState": server_schemas.RESET_STATE,
    "os-getConsoleOutput": server_schemas.CONSOLE_OUTPUT,
    "createImage": server_schemas.CREATE_IMAGE,
    "resize": compute_migrations.RESIZE,
    "migrate": compute_migrations.MIGRATE_V256,
    "confirmResize": compute_migrations.NULL,
    "revertResize": compute_migrations.NULL,
    "unshelve": shelve_schemas.UNSHELVE_V291,
}
# rebuild validates the whole body ({"rebuild": {...}}) with this one.
REBUILD_SCHEMA = rebuild.rebuild(MAX)

_OBJECT: dict[str, Any] = {"type": "object"}
# Bodies a handler checks by hand: documented shapes, not validation schemas.
HAND_CHECKED: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", _C + "/servers/{server_id}/remote-consoles"): {
        "type": "object",
        "required": ["remote_console"],
        "properties": {"remote_console": _OBJECT},
    },
    ("POST", _C + "/os-security-groups"): _OBJECT,
    ("POST", _C + "/os-security-group-rules"): _OBJECT,
    ("POST", _C + "/images/{image_id}/metadata"): _OBJECT,
    ("PUT", _C + "/images/{image_id}/metadata"): _OBJECT,
    ("PUT", _C + "/images/{image_id}/metadata/{key}"): _OBJECT,
}
# Raw bytes (image data, migration disks).
BINARY = {("PUT", "/image/v2/images/{image_id}/file"), ("PUT", "/migration-disks/{migration_uuid}")}
_MEDIA_TYPES = {
    ("PATCH", "/image/v2/images/{image_id}"): "application/openstack-images-v2.1-json-patch"
}

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_ERROR_STATUSES = ("400", "401", "403", "404", "405", "409", "413", "500")


def server_action_schema() -> dict[str, Any]:
    """One `oneOf` branch per action of `server_actions.ACTIONS`, each an object of one key."""
    branches = []
    for name in server_actions.ACTIONS:
        if name == "rebuild":
            branches.append(REBUILD_SCHEMA)
            continue
        branches.append(
            {
                "type": "object",
                "required": [name],
                "properties": {name: ACTION_SCHEMAS.get(name, {})},
                "additionalProperties": False,
            }
        )
    return {"oneOf": branches}


def legacy_service_schema() -> dict[str, Any]:
    """PUT /os-services/{service_id}: 2.53's update, or (before 2.53) a legacy action's body."""
    return {"oneOf": [service_schemas.UPDATE, *service_schemas.LEGACY_ACTIONS.values()]}


def _request_schema(method: str, path: str) -> dict[str, Any] | None:
    if (method, path) in REQUEST_SCHEMAS:
        return REQUEST_SCHEMAS[method, path]
    if (method, path) == ("POST", _C + "/servers/{server_id}/action"):
        return server_action_schema()
    if (method, path) == ("PUT", _C + "/os-services/{service_id}"):
        return legacy_service_schema()
    return HAND_CHECKED.get((method, path))


def _service(path: str) -> str:
    for prefix, name in (
        ("/identity", "identity"),
        ("/compute", "compute"),
        ("/image", "image"),
        ("/networking", "network"),
    ):
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return "internal" if path.startswith(INTERNAL_PREFIXES) else "root"


def _error_schema_ref(service: str) -> str:
    name = {"identity": "KeystoneError", "network": "NeutronError", "image": "GlanceError"}
    return "#/components/schemas/" + name.get(service, "NovaError")


def _public(method: str, path: str) -> bool:
    """The middleware's rule (`app._is_public`) on a route template."""
    if policy.is_write(method, path):
        return False
    if path in api_app._PUBLIC_EXACT or path == PATH:
        return True
    if path.startswith(api_app._PUBLIC_PREFIXES) or path.startswith("/tunnel"):
        return True
    return path.rstrip("/") == _I + "/auth/tokens" and method == "POST"


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    service = _service(path)
    name = getattr(handler, "__qualname__", "handler").replace(".<locals>.", ".")
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}:{path}",
        "summary": f"{getattr(handler, '__module__', '')}.{name}",
        "tags": [service],
        "responses": _responses(service, path, method),
    }
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for p in _PARAM.findall(path)
    ]
    if path.startswith(_C + "/") or path == _C:
        params.append(
            {
                "name": "OpenStack-API-Version",
                "in": "header",
                "required": False,
                "description": f"compute microversion, 2.1 to {MAX.text} or 'latest'",
                "schema": {"type": "string"},
            }
        )
    if params:
        op["parameters"] = params
    if service == "internal":
        op["x-internal"] = True
    if _public(method, path):
        op["security"] = []
    if (method, path) in BINARY:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    else:
        schema = _request_schema(method, path)
        if schema is not None:
            media = _MEDIA_TYPES.get((method, path), "application/json")
            op["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    return op


def _responses(service: str, path: str, method: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"2XX": {"description": "Success"}}
    if service == "image" and path in ("/image", "/image/"):
        responses = {"300": {"description": "The versions document (Multiple Choices)"}}
    if service == "root" and path == "/":
        responses["302"] = {"description": "A browser goes to the dashboard"}
    if service == "internal":
        responses["101"] = {"description": "Switching Protocols (websocket)"}
    error = {"application/json": {"schema": {"$ref": _error_schema_ref(service)}}}
    for status in _ERROR_STATUSES:
        if method == "HEAD":
            responses[status] = {"description": "Error (no body on HEAD)"}
        else:
            responses[status] = {"description": "Error", "content": error}
    return responses


def _error_components() -> dict[str, Any]:
    text = {"type": "string"}
    fault = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "integer"}, "message": text},
    }
    nova = {
        "description": "Nova's error: one key (badRequest, itemNotFound, computeFault, ...)",
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": fault,
    }
    return {
        "NovaError": nova,
        "GlanceError": {**nova, "description": "mininova's Glance errors use Nova's body"},
        "KeystoneError": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "title", "message"],
                    "properties": {"code": {"type": "integer"}, "title": text, "message": text},
                }
            },
        },
        "NeutronError": {
            "type": "object",
            "required": ["NeutronError"],
            "properties": {
                "NeutronError": {
                    "type": "object",
                    "required": ["type", "message", "detail"],
                    "properties": {"type": text, "message": text, "detail": text},
                }
            },
        },
    }


def build_document(router: web.UrlDispatcher, base_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of `router` (request schemas shared, not copied)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes():
        resource = route.resource
        if resource is None or route.method == "*":
            continue
        path = resource.canonical
        template = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        item = paths.setdefault(template, {})
        item[route.method.lower()] = _operation(route.method, template, route.handler)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "mininova",
            "version": MAX.text,
            "description": "Keystone v3, Nova v2.1, Glance v2 and Neutron v2.0 subsets of "
            "mininova, plus its internal routes (tag `internal`).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _error_components(),
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
            },
        },
        "security": [{"token": []}],
        "tags": [
            {"name": n} for n in ("identity", "compute", "image", "network", "root", "internal")
        ],
    }
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document


async def openapi_document(request: web.Request) -> web.Response:
    """The document of this app's routes (public, like the version documents)."""
    return json_response(build_document(request.app.router))


def setup(app: web.Application) -> None:
    app.router.add_get(PATH, openapi_document)
