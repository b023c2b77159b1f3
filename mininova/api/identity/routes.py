"""Keystone v3 routes under /identity: discovery, tokens, projects, users, roles."""

from __future__ import annotations

import sqlite3

from aiohttp import web

from mininova.api.context import SERVICES, context
from mininova.api.errors import BadRequest, Conflict, NotFound, Unauthorized
from mininova.api.services import Services
from mininova.api.validation import validated_body
from mininova.identity.service import (
    DEFAULT_DOMAIN,
    AuthFailed,
    TokenInfo,
    hash_password,
    new_id,
)
from mininova.timeutil import iso, now_iso

PREFIX = "/identity"


def _svc(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def _version_doc(svc: Services) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": svc.url(PREFIX + "/v3/")}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": {"values": [_version_doc(_svc(request))]}}, status=300)


async def version_v3(request: web.Request) -> web.Response:
    return web.json_response({"version": _version_doc(_svc(request))})


def catalog(svc: Services) -> list[dict]:
    entries = []
    for kind, name, path in (
        ("identity", "keystone", "/identity"),
        ("compute", "nova", "/compute/v2.1"),
        ("image", "glance", "/image"),
    ):
        endpoints = [
            {
                "id": f"{name}-{iface}",
                "interface": iface,
                "region": svc.config.region,
                "region_id": svc.config.region,
                "url": svc.url(path),
            }
            for iface in ("public", "internal", "admin")
        ]
        entries.append(
            {"type": kind, "name": name, "id": f"{name}-service", "endpoints": endpoints}
        )
    return entries


def _token_body(svc: Services, info: TokenInfo, with_catalog: bool = True) -> dict:
    token = {
        "methods": ["password"],
        "expires_at": iso(info.expires_at),
        "issued_at": iso(info.issued_at),
        "audit_ids": [info.audit_id],
        "user": {
            "id": info.user_id,
            "name": info.user_name,
            "domain": DEFAULT_DOMAIN,
            "password_expires_at": None,
        },
        "project": {"id": info.project_id, "name": info.project_name, "domain": DEFAULT_DOMAIN},
        "roles": [{"id": r["id"], "name": r["name"]} for r in info.roles],
        "is_domain": False,
    }
    if with_catalog:
        token["catalog"] = catalog(svc)
    return {"token": token}


_AUTH_SCHEMA = {
    "type": "object",
    "required": ["auth"],
    "properties": {
        "auth": {
            "type": "object",
            "required": ["identity"],
            "properties": {
                "identity": {
                    "type": "object",
                    "required": ["methods"],
                    "properties": {"methods": {"type": "array", "items": {"type": "string"}}},
                },
                "scope": {"type": "object"},
            },
        }
    },
}


async def create_token(request: web.Request) -> web.Response:
    svc = _svc(request)
    body = await validated_body(request, _AUTH_SCHEMA)
    identity = body["auth"]["identity"]
    if "password" not in identity["methods"]:
        raise Unauthorized("Only password authentication is supported.")
    user = (identity.get("password") or {}).get("user")
    if not isinstance(user, dict) or not isinstance(user.get("password"), str):
        raise BadRequest("auth.identity.password.user with a password is required.")
    scope = body["auth"].get("scope") or {}
    project = scope.get("project") if isinstance(scope, dict) else None
    if project is not None and not isinstance(project, dict):
        raise BadRequest("auth.scope.project must be an object.")
    try:
        token, info = await svc.identity.authenticate(user, user["password"], project)
    except AuthFailed as exc:
        raise Unauthorized(str(exc)) from None
    response = web.json_response(_token_body(svc, info), status=201)
    response.headers["X-Subject-Token"] = token
    return response


async def _subject(request: web.Request) -> tuple[str, TokenInfo]:
    subject = request.headers.get("X-Subject-Token")
    if not subject:
        raise BadRequest("X-Subject-Token header is required.")
    try:
        return subject, await _svc(request).identity.validate(subject)
    except AuthFailed:
        raise NotFound("Could not find token.") from None


async def validate_token(request: web.Request) -> web.Response:
    subject, info = await _subject(request)
    if request.method == "HEAD":
        return web.Response(status=200, headers={"X-Subject-Token": subject})
    response = web.json_response(_token_body(_svc(request), info))
    response.headers["X-Subject-Token"] = subject
    return response


async def revoke_token(request: web.Request) -> web.Response:
    subject, _ = await _subject(request)
    await _svc(request).identity.revoke(subject)
    return web.Response(status=204)


# ---- projects -------------------------------------------------------------------------------


def _project_view(svc: Services, row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "description": row["description"],
        "enabled": bool(row["enabled"]),
        "parent_id": row["domain_id"],
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": svc.url(f"{PREFIX}/v3/projects/{row['id']}")},
    }


def _collection_links(svc: Services, name: str) -> dict:
    return {"self": svc.url(f"{PREFIX}/v3/{name}"), "previous": None, "next": None}


async def list_projects(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    name = request.query.get("name")
    if ctx.is_admin:
        sql, params = "SELECT * FROM projects", []
    else:
        sql = (
            "SELECT p.* FROM projects p WHERE p.id IN "
            "(SELECT project_id FROM role_assignments WHERE user_id = ?)"
        )
        params = [ctx.user_id]
    rows = await svc.store.fetchall(sql + " ORDER BY name", params)
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
    return web.json_response(
        {
            "projects": [_project_view(svc, r) for r in rows],
            "links": _collection_links(svc, "projects"),
        }
    )


async def _project_or_404(request: web.Request) -> dict:
    svc = _svc(request)
    row = await svc.store.fetchone(
        "SELECT * FROM projects WHERE id = ?", (request.match_info["project_id"],)
    )
    if row is None:
        raise NotFound(f"Could not find project: {request.match_info['project_id']}.")
    return row


async def show_project(request: web.Request) -> web.Response:
    ctx = context(request)
    row = await _project_or_404(request)
    if not ctx.is_admin and row["id"] != ctx.project_id:
        ctx.require_admin("identity:get_project")
    return web.json_response({"project": _project_view(_svc(request), row)})


_PROJECT_SCHEMA = {
    "type": "object",
    "required": ["project"],
    "properties": {
        "project": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": ["string", "null"]},
                "enabled": {"type": "boolean"},
                "domain_id": {"type": ["string", "null"]},
            },
        }
    },
}


async def create_project(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:create_project")
    body = (await validated_body(request, _PROJECT_SCHEMA))["project"]
    project_id = new_id()
    try:
        await svc.store.execute(
            "INSERT INTO projects (id, name, description, enabled, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                project_id,
                body["name"],
                body.get("description") or "",
                int(body.get("enabled", True)),
                now_iso(),
            ),
        )
    except sqlite3.IntegrityError:
        raise Conflict(
            f"Conflict occurred attempting to store project - "
            f"it is not permitted to have two projects with the same name "
            f"in the same domain : {body['name']}."
        ) from None
    row = await svc.store.fetchone("SELECT * FROM projects WHERE id = ?", (project_id,))
    return web.json_response({"project": _project_view(svc, row or {})}, status=201)


async def update_project(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:update_project")
    row = await _project_or_404(request)
    body = await validated_body(
        request,
        {"type": "object", "required": ["project"], "properties": {"project": {"type": "object"}}},
    )
    changes = body["project"]
    for key in ("name", "description"):
        if key in changes:
            if not isinstance(changes[key], str):
                raise BadRequest(f"Invalid input for field '{key}'.")
            row[key] = changes[key]
    if "enabled" in changes:
        row["enabled"] = int(bool(changes["enabled"]))
    await svc.store.execute(
        "UPDATE projects SET name=?, description=?, enabled=? WHERE id=?",
        (row["name"], row["description"], row["enabled"], row["id"]),
    )
    if not row["enabled"]:
        # Keystone revokes the tokens of a disabled project; re-enabling does not revive them.
        await svc.identity.revoke_project(row["id"])
    else:
        svc.identity.forget_cached(project_id=row["id"])  # tokens carry the project's name
    return web.json_response({"project": _project_view(svc, row)})


async def delete_project(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:delete_project")
    row = await _project_or_404(request)
    if row["name"] in ("admin", "service"):
        raise Conflict(f"Project {row['name']} is needed by mininova itself.")
    live = await svc.store.fetchone(
        "SELECT COUNT(*) AS n FROM instances WHERE project_id = ? AND deleted = 0", (row["id"],)
    )
    if live and live["n"]:
        raise Conflict(f"Project {row['id']} still has {live['n']} server(s).")
    await svc.store.execute("DELETE FROM projects WHERE id = ?", (row["id"],))
    await svc.identity.revoke_project(row["id"])
    return web.Response(status=204)


# ---- users ----------------------------------------------------------------------------------


def _user_view(svc: Services, row: dict) -> dict:
    view = {
        "id": row["id"],
        "name": row["name"],
        "domain_id": row["domain_id"],
        "enabled": bool(row["enabled"]),
        "password_expires_at": None,
        "options": {},
        "links": {"self": svc.url(f"{PREFIX}/v3/users/{row['id']}")},
    }
    if row.get("default_project_id"):
        view["default_project_id"] = row["default_project_id"]
    if row.get("email"):
        view["email"] = row["email"]
    return view


async def list_users(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:list_users")
    rows = await svc.store.fetchall(
        "SELECT * FROM users WHERE name != 'mininova-service' ORDER BY name"
    )
    name = request.query.get("name")
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
    return web.json_response(
        {"users": [_user_view(svc, r) for r in rows], "links": _collection_links(svc, "users")}
    )


async def _user_or_404(request: web.Request) -> dict:
    row = await _svc(request).store.fetchone(
        "SELECT * FROM users WHERE id = ?", (request.match_info["user_id"],)
    )
    if row is None:
        raise NotFound(f"Could not find user: {request.match_info['user_id']}.")
    return row


async def show_user(request: web.Request) -> web.Response:
    ctx = context(request)
    row = await _user_or_404(request)
    if row["id"] != ctx.user_id:
        ctx.require_admin("identity:get_user")
    return web.json_response({"user": _user_view(_svc(request), row)})


_USER_SCHEMA = {
    "type": "object",
    "required": ["user"],
    "properties": {
        "user": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "password": {"type": ["string", "null"]},
                "default_project_id": {"type": ["string", "null"]},
                "email": {"type": ["string", "null"]},
                "enabled": {"type": "boolean"},
                "domain_id": {"type": ["string", "null"]},
            },
        }
    },
}


async def create_user(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:create_user")
    body = (await validated_body(request, _USER_SCHEMA))["user"]
    project_id = body.get("default_project_id")
    if project_id and not await svc.store.fetchone(
        "SELECT id FROM projects WHERE id = ?", (project_id,)
    ):
        raise BadRequest(f"Could not find project: {project_id}.")
    user_id = new_id()
    password = body.get("password") or new_id()
    try:
        await svc.store.execute(
            "INSERT INTO users (id, name, password_hash, default_project_id, email, enabled,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                user_id,
                body["name"],
                hash_password(password),
                project_id,
                body.get("email"),
                int(body.get("enabled", True)),
                now_iso(),
            ),
        )
    except sqlite3.IntegrityError:
        raise Conflict(
            f"Conflict occurred attempting to store user - Duplicate entry "
            f"found with name {body['name']}."
        ) from None
    row = await svc.store.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))
    return web.json_response({"user": _user_view(svc, row or {})}, status=201)


async def update_user(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:update_user")
    row = await _user_or_404(request)
    body = await validated_body(
        request,
        {"type": "object", "required": ["user"], "properties": {"user": {"type": "object"}}},
    )
    changes = body["user"]
    if isinstance(changes.get("password"), str):
        row["password_hash"] = hash_password(changes["password"])
        await svc.identity.revoke_user(row["id"])
    for key in ("name", "email", "default_project_id"):
        if key in changes:
            row[key] = changes[key]
    if "enabled" in changes:
        row["enabled"] = int(bool(changes["enabled"]))
        if not row["enabled"]:
            await svc.identity.revoke_user(row["id"])
    await svc.store.execute(
        "UPDATE users SET name=?, email=?, default_project_id=?, enabled=?, password_hash=?"
        " WHERE id=?",
        (
            row["name"],
            row["email"],
            row["default_project_id"],
            row["enabled"],
            row["password_hash"],
            row["id"],
        ),
    )
    svc.identity.forget_cached(user_id=row["id"])  # tokens carry the user's name
    return web.json_response({"user": _user_view(svc, row)})


async def delete_user(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:delete_user")
    row = await _user_or_404(request)
    if row["name"] in ("admin", "mininova-service"):
        raise Conflict(f"User {row['name']} is needed by mininova itself.")
    await svc.identity.revoke_user(row["id"])
    await svc.store.execute("DELETE FROM users WHERE id = ?", (row["id"],))
    return web.Response(status=204)


# ---- roles ----------------------------------------------------------------------------------


def _role_view(svc: Services, row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "domain_id": None,
        "description": None,
        "options": {},
        "links": {"self": svc.url(f"{PREFIX}/v3/roles/{row['id']}")},
    }


async def list_roles(request: web.Request) -> web.Response:
    svc = _svc(request)
    rows = await svc.store.fetchall("SELECT * FROM roles ORDER BY name")
    name = request.query.get("name")
    if name is not None:
        rows = [r for r in rows if r["name"] == name]
    return web.json_response(
        {"roles": [_role_view(svc, r) for r in rows], "links": _collection_links(svc, "roles")}
    )


async def show_role(request: web.Request) -> web.Response:
    svc = _svc(request)
    row = await svc.store.fetchone(
        "SELECT * FROM roles WHERE id = ?", (request.match_info["role_id"],)
    )
    if row is None:
        raise NotFound(f"Could not find role: {request.match_info['role_id']}.")
    return web.json_response({"role": _role_view(svc, row)})


async def _assignment_targets(request: web.Request) -> tuple[dict, dict, dict]:
    svc = _svc(request)
    context(request).require_admin("identity:create_grant")
    project = await _project_or_404(request)
    user = await _user_or_404(request)
    role = await svc.store.fetchone(
        "SELECT * FROM roles WHERE id = ?", (request.match_info["role_id"],)
    )
    if role is None:
        raise NotFound(f"Could not find role: {request.match_info['role_id']}.")
    return project, user, role


async def grant_role(request: web.Request) -> web.Response:
    svc = _svc(request)
    project, user, role = await _assignment_targets(request)
    await svc.store.execute(
        "INSERT OR IGNORE INTO role_assignments (user_id, project_id, role_id) VALUES (?, ?, ?)",
        (user["id"], project["id"], role["id"]),
    )
    svc.identity.forget_cached(user_id=user["id"], project_id=project["id"])
    return web.Response(status=204)


async def check_grant(request: web.Request) -> web.Response:
    svc = _svc(request)
    project, user, role = await _assignment_targets(request)
    row = await svc.store.fetchone(
        "SELECT 1 AS x FROM role_assignments WHERE user_id=? AND project_id=? AND role_id=?",
        (user["id"], project["id"], role["id"]),
    )
    if row is None:
        raise NotFound("Could not find role assignment.")
    return web.Response(status=204)


async def revoke_role(request: web.Request) -> web.Response:
    svc = _svc(request)
    project, user, role = await _assignment_targets(request)
    removed = await svc.store.execute(
        "DELETE FROM role_assignments WHERE user_id=? AND project_id=? AND role_id=?",
        (user["id"], project["id"], role["id"]),
    )
    if not removed:
        raise NotFound("Could not find role assignment.")
    # The user's tokens for the project now carry fewer roles, or none (then they are invalid).
    svc.identity.forget_cached(user_id=user["id"], project_id=project["id"])
    return web.Response(status=204)


async def list_role_assignments(request: web.Request) -> web.Response:
    svc, ctx = _svc(request), context(request)
    ctx.require_admin("identity:list_role_assignments")
    q = request.query
    rows = await svc.store.fetchall(
        "SELECT a.user_id, a.project_id, a.role_id, u.name AS user_name, p.name AS project_name,"
        " r.name AS role_name FROM role_assignments a JOIN users u ON u.id = a.user_id"
        " JOIN projects p ON p.id = a.project_id JOIN roles r ON r.id = a.role_id"
        " WHERE u.name != 'mininova-service' ORDER BY u.name, p.name, r.name"
    )
    filters = {"user.id": "user_id", "scope.project.id": "project_id", "role.id": "role_id"}
    for param, column in filters.items():
        if param in q:
            rows = [r for r in rows if r[column] == q[param]]
    names = "include_names" in q and q["include_names"].lower() not in ("0", "false")
    items = []
    for r in rows:
        user: dict = {"id": r["user_id"]}
        project: dict = {"id": r["project_id"]}
        role: dict = {"id": r["role_id"]}
        if names:
            user.update(name=r["user_name"], domain=DEFAULT_DOMAIN)
            project.update(name=r["project_name"], domain=DEFAULT_DOMAIN)
            role["name"] = r["role_name"]
        items.append(
            {
                "user": user,
                "scope": {"project": project},
                "role": role,
                "links": {
                    "assignment": svc.url(
                        f"{PREFIX}/v3/projects/{r['project_id']}/users/{r['user_id']}"
                        f"/roles/{r['role_id']}"
                    )
                },
            }
        )
    return web.json_response(
        {"role_assignments": items, "links": _collection_links(svc, "role_assignments")}
    )


# ---- domains (the single Default domain) ---------------------------------------------------


def _domain_view(svc: Services) -> dict:
    return {
        "id": "default",
        "name": "Default",
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": svc.url(f"{PREFIX}/v3/domains/default")},
    }


async def list_domains(request: web.Request) -> web.Response:
    svc = _svc(request)
    name = request.query.get("name")
    items = [_domain_view(svc)] if name in (None, "Default") else []
    return web.json_response({"domains": items, "links": _collection_links(svc, "domains")})


async def show_domain(request: web.Request) -> web.Response:
    if request.match_info["domain_id"] not in ("default", "Default"):
        raise NotFound(f"Could not find domain: {request.match_info['domain_id']}.")
    return web.json_response({"domain": _domain_view(_svc(request))})


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX, versions)
    r.add_get(PREFIX + "/", versions)
    r.add_get(PREFIX + "/v3", version_v3)
    r.add_get(PREFIX + "/v3/", version_v3)
    r.add_post(PREFIX + "/v3/auth/tokens", create_token)
    r.add_get(PREFIX + "/v3/auth/tokens", validate_token, allow_head=True)
    r.add_delete(PREFIX + "/v3/auth/tokens", revoke_token)
    r.add_get(PREFIX + "/v3/projects", list_projects)
    r.add_post(PREFIX + "/v3/projects", create_project)
    r.add_get(PREFIX + "/v3/projects/{project_id}", show_project)
    r.add_patch(PREFIX + "/v3/projects/{project_id}", update_project)
    r.add_delete(PREFIX + "/v3/projects/{project_id}", delete_project)
    r.add_get(PREFIX + "/v3/users", list_users)
    r.add_post(PREFIX + "/v3/users", create_user)
    r.add_get(PREFIX + "/v3/users/{user_id}", show_user)
    r.add_patch(PREFIX + "/v3/users/{user_id}", update_user)
    r.add_delete(PREFIX + "/v3/users/{user_id}", delete_user)
    r.add_get(PREFIX + "/v3/roles", list_roles)
    r.add_get(PREFIX + "/v3/roles/{role_id}", show_role)
    grant = PREFIX + "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"
    r.add_put(grant, grant_role)
    r.add_head(grant, check_grant)
    r.add_delete(grant, revoke_role)
    r.add_get(PREFIX + "/v3/role_assignments", list_role_assignments)
    r.add_get(PREFIX + "/v3/domains", list_domains)
    r.add_get(PREFIX + "/v3/domains/{domain_id}", show_domain)
