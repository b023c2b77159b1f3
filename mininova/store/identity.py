"""Keystone's tables: projects, users, roles, role assignments and tokens.

Rows come back as plain dicts with the table's columns; `enabled` is a 0/1 int, a project's
`tags` and a token's `methods` are decoded lists (writers pass lists too). Names are
unique per table (one Default domain): callers check a name is free inside a transaction that
holds `NAMES_LOCK` before they insert or rename (see `mininova.identity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, select, update

from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import projects, role_assignments, roles, tokens, users

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

# The advisory-lock key of transactions that check a project, user or role name is free.
NAMES_LOCK = "identity:names"

_PROJECT_COLUMNS = {"id", "name", "domain_id", "description", "enabled", "created_at", "tags"}
_USER_COLUMNS = {
    "id",
    "name",
    "domain_id",
    "password_hash",
    "default_project_id",
    "email",
    "enabled",
    "created_at",
}

# ---- statements built once ------------------------------------------------------------------

_PROJECT = prepared(select(projects).where(projects.c.id == bindparam("id")))
_PROJECT_BY_NAME = prepared(select(projects).where(projects.c.name == bindparam("name")))
_PROJECTS = prepared(select(projects).order_by(projects.c.name))
_PROJECTS_OF_USER = prepared(
    select(projects)
    .where(
        projects.c.id.in_(
            select(role_assignments.c.project_id).where(
                role_assignments.c.user_id == bindparam("user_id")
            )
        )
    )
    .order_by(projects.c.name)
)
_DELETE_PROJECT = prepared(delete(projects).where(projects.c.id == bindparam("id")))

_USER = prepared(select(users).where(users.c.id == bindparam("id")))
_USER_BY_NAME = prepared(select(users).where(users.c.name == bindparam("name")))
_DELETE_USER = prepared(delete(users).where(users.c.id == bindparam("id")))

_ROLE = prepared(select(roles).where(roles.c.id == bindparam("id")))
_ROLE_BY_NAME = prepared(select(roles).where(roles.c.name == bindparam("name")))
_ROLES = prepared(select(roles).order_by(roles.c.name))

_assignment_key = and_(
    role_assignments.c.user_id == bindparam("user_id"),
    role_assignments.c.project_id == bindparam("project_id"),
)
_one_assignment = and_(_assignment_key, role_assignments.c.role_id == bindparam("role_id"))
_ROLES_FOR = prepared(
    select(roles.c.id, roles.c.name)
    .select_from(role_assignments.join(roles, roles.c.id == role_assignments.c.role_id))
    .where(_assignment_key)
    .order_by(roles.c.name)
)
_HAS_ASSIGNMENT = prepared(select(role_assignments.c.role_id).where(_one_assignment))
_DELETE_ASSIGNMENT = prepared(delete(role_assignments).where(_one_assignment))

_TOKEN_IDENTITY = prepared(
    select(
        tokens,
        users.c.name.label("user_name"),
        users.c.enabled.label("user_enabled"),
        projects.c.name.label("project_name"),
        projects.c.enabled.label("project_enabled"),
    )
    .select_from(
        tokens.join(users, users.c.id == tokens.c.user_id).join(
            projects, projects.c.id == tokens.c.project_id
        )
    )
    .where(tokens.c.token_hash == bindparam("token_hash"))
)
_DELETE_TOKEN = prepared(delete(tokens).where(tokens.c.token_hash == bindparam("token_hash")))
_DELETE_USER_TOKENS = prepared(delete(tokens).where(tokens.c.user_id == bindparam("user_id")))
_DELETE_PROJECT_TOKENS = prepared(
    delete(tokens).where(tokens.c.project_id == bindparam("project_id"))
)
_PURGE_TOKENS = prepared(delete(tokens).where(tokens.c.expires_at < bindparam("now")))


def _changes(values: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    bad = set(values) - allowed
    if bad:
        raise ValueError(f"unknown columns: {sorted(bad)}")
    row = dict(values)
    if "enabled" in row:
        row["enabled"] = int(bool(row["enabled"]))
    if "tags" in row:
        row["tags"] = dumps(list(row["tags"] or []))
    return row


def _project(row: Row | None) -> Row | None:
    """A projects row with `tags` decoded."""
    if row is None:
        return None
    out = dict(row)
    out["tags"] = list(loads(row.get("tags"), []) or [])
    return out


# ---- projects -------------------------------------------------------------------------------


async def get_project(db: Executor, project_id: str) -> Row | None:
    return _project(await db.one(_PROJECT, {"id": project_id}))


async def project_by_name(db: Executor, name: str) -> Row | None:
    return _project(await db.one(_PROJECT_BY_NAME, {"name": name}))


async def list_projects(db: Executor, *, member: str | None = None) -> list[Row]:
    """All projects by name, or only those where user `member` holds a role."""
    if member is None:
        rows = await db.all(_PROJECTS)
    else:
        rows = await db.all(_PROJECTS_OF_USER, {"user_id": member})
    return [_project(row) for row in rows]  # type: ignore[misc]


async def insert_project(db: Executor, values: Mapping[str, Any]) -> None:
    """INSERT one project (`id`, `name`, `created_at` required; `tags` a list); the name must
    be free."""
    await db.insert(projects, _changes(values, _PROJECT_COLUMNS))


async def update_project(db: Executor, project_id: str, changes: Mapping[str, Any]) -> bool:
    """Set columns of a project; False when there is no such project."""
    values = _changes(changes, _PROJECT_COLUMNS - {"id"})
    if not values:
        return await get_project(db, project_id) is not None
    statement = update(projects).where(projects.c.id == project_id).values(values)
    return await db.execute(statement) > 0


async def delete_project(db: Executor, project_id: str) -> bool:
    """Delete a project (its role assignments go with it)."""
    return await db.execute(_DELETE_PROJECT, {"id": project_id}) > 0


# ---- users ----------------------------------------------------------------------------------


async def get_user(db: Executor, user_id: str) -> Row | None:
    return await db.one(_USER, {"id": user_id})


async def user_by_name(db: Executor, name: str) -> Row | None:
    return await db.one(_USER_BY_NAME, {"name": name})


async def list_users(db: Executor, *, hidden: Sequence[str] = ()) -> list[Row]:
    """All users by name, except those named in `hidden`."""
    statement = select(users).order_by(users.c.name)
    if hidden:
        statement = statement.where(users.c.name.not_in(list(hidden)))
    return await db.all(statement)


async def insert_user(db: Executor, values: Mapping[str, Any]) -> None:
    """INSERT one user (`id`, `name`, `password_hash`, `created_at` required)."""
    await db.insert(users, _changes(values, _USER_COLUMNS))


async def update_user(db: Executor, user_id: str, changes: Mapping[str, Any]) -> bool:
    """Set columns of a user; False when there is no such user."""
    values = _changes(changes, _USER_COLUMNS - {"id"})
    if not values:
        return await get_user(db, user_id) is not None
    statement = update(users).where(users.c.id == user_id).values(values)
    return await db.execute(statement) > 0


async def delete_user(db: Executor, user_id: str) -> bool:
    """Delete a user (their role assignments go with them; tokens are the caller's)."""
    return await db.execute(_DELETE_USER, {"id": user_id}) > 0


# ---- roles and role assignments -------------------------------------------------------------


async def get_role(db: Executor, role_id: str) -> Row | None:
    return await db.one(_ROLE, {"id": role_id})


async def role_by_name(db: Executor, name: str) -> Row | None:
    return await db.one(_ROLE_BY_NAME, {"name": name})


async def list_roles(db: Executor) -> list[Row]:
    return await db.all(_ROLES)


async def insert_role(db: Executor, role_id: str, name: str) -> None:
    await db.insert(roles, {"id": role_id, "name": name})


async def roles_for(db: Executor, user_id: str, project_id: str) -> list[Row]:
    """The roles (`id`, `name`, by name) user `user_id` holds on project `project_id`."""
    return await db.all(_ROLES_FOR, {"user_id": user_id, "project_id": project_id})


async def has_assignment(db: Executor, user_id: str, project_id: str, role_id: str) -> bool:
    params = {"user_id": user_id, "project_id": project_id, "role_id": role_id}
    return await db.one(_HAS_ASSIGNMENT, params) is not None


async def grant(db: Executor, user_id: str, project_id: str, role_id: str) -> bool:
    """Give the user the role on the project; False when they already held it."""
    store = getattr(db, "store", db)  # a Transaction knows its Store
    async with store.transaction() as tx:
        await tx.lock(f"identity:assignment:{user_id}:{project_id}")
        if await has_assignment(tx, user_id, project_id, role_id):
            return False
        values = {"user_id": user_id, "project_id": project_id, "role_id": role_id}
        await tx.insert(role_assignments, values)
        return True


async def revoke(db: Executor, user_id: str, project_id: str, role_id: str) -> bool:
    """Take the role away; False when the user did not hold it."""
    params = {"user_id": user_id, "project_id": project_id, "role_id": role_id}
    return await db.execute(_DELETE_ASSIGNMENT, params) > 0


async def list_assignments(
    db: Executor,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    role_id: str | None = None,
    hidden_users: Sequence[str] = (),
) -> list[Row]:
    """Assignments with the three ids and names (`user_name`, `project_name`, `role_name`),
    ordered by user, project and role name; each given id narrows the list."""
    a = role_assignments
    statement = (
        select(
            a.c.user_id,
            a.c.project_id,
            a.c.role_id,
            users.c.name.label("user_name"),
            projects.c.name.label("project_name"),
            roles.c.name.label("role_name"),
        )
        .select_from(
            a.join(users, users.c.id == a.c.user_id)
            .join(projects, projects.c.id == a.c.project_id)
            .join(roles, roles.c.id == a.c.role_id)
        )
        .order_by(users.c.name, projects.c.name, roles.c.name)
    )
    if hidden_users:
        statement = statement.where(users.c.name.not_in(list(hidden_users)))
    for column, value in (
        (a.c.user_id, user_id),
        (a.c.project_id, project_id),
        (a.c.role_id, role_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    return await db.all(statement)


# ---- tokens ---------------------------------------------------------------------------------


async def insert_token(
    db: Executor,
    *,
    token_hash: str,
    user_id: str,
    project_id: str,
    issued_at: str,
    expires_at: str,
    audit_id: str,
    methods: Sequence[str] = ("password",),
    parent_audit_id: str | None = None,
) -> None:
    await db.insert(
        tokens,
        {
            "token_hash": token_hash,
            "user_id": user_id,
            "project_id": project_id,
            "issued_at": issued_at,
            "expires_at": expires_at,
            "audit_id": audit_id,
            "methods": dumps(list(methods)),
            "parent_audit_id": parent_audit_id,
        },
    )


async def token_identity(db: Executor, token_hash: str) -> Row | None:
    """A token's row (`methods` decoded) with `user_name`, `user_enabled`, `project_name`,
    `project_enabled`; None when the token, its user or its project does not exist."""
    row = await db.one(_TOKEN_IDENTITY, {"token_hash": token_hash})
    if row is None:
        return None
    out = dict(row)
    out["methods"] = list(loads(row.get("methods"), None) or ["password"])
    return out


async def delete_token(db: Executor, token_hash: str) -> bool:
    return await db.execute(_DELETE_TOKEN, {"token_hash": token_hash}) > 0


async def delete_user_tokens(db: Executor, user_id: str) -> int:
    return await db.execute(_DELETE_USER_TOKENS, {"user_id": user_id})


async def delete_project_tokens(db: Executor, project_id: str) -> int:
    return await db.execute(_DELETE_PROJECT_TOKENS, {"project_id": project_id})


async def purge_expired(db: Executor, now: str) -> int:
    """Delete the tokens that expired before `now` (an ISO timestamp); how many went."""
    return await db.execute(_PURGE_TOKENS, {"now": now})


async def token_hashes(db: Executor) -> set[str]:
    """The hash of every stored token (tests check no token leaks elsewhere)."""
    return {row["token_hash"] for row in await db.all(select(tokens.c.token_hash))}
