"""Roles and role assignments (Keystone's assignment backend).

The roles are fixed at bootstrap (admin, member, reader); assignments give a user a role on a
project. A change drops the cached validations of the user's tokens for that project, so it
reaches tokens already issued (a user left with no role there loses access).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mininova.errors import NotFound
from mininova.identity import projects, users
from mininova.identity.users import HIDDEN
from mininova.store import identity as repo

if TYPE_CHECKING:
    from mininova.identity.service import IdentityService


async def get_role(identity: IdentityService, role_id: str) -> dict[str, Any]:
    row = await repo.get_role(identity.store, role_id)
    if row is None:
        raise NotFound(f"Could not find role: {role_id}.")
    return row


async def list_roles(identity: IdentityService, *, name: str | None = None) -> list[dict[str, Any]]:
    rows = await repo.list_roles(identity.store)
    if name is not None:
        rows = [row for row in rows if row["name"] == name]
    return rows


async def _targets(
    identity: IdentityService, project_id: str, user_id: str, role_id: str
) -> tuple[str, str, str]:
    """The ids, once the project, the user and the role exist (NotFound naming the first
    missing one)."""
    await projects.get(identity, project_id)
    await users.get(identity, user_id)
    await get_role(identity, role_id)
    return user_id, project_id, role_id


async def grant(identity: IdentityService, project_id: str, user_id: str, role_id: str) -> None:
    """Give the user the role on the project (nothing happens if they hold it already)."""
    await repo.grant(identity.store, *await _targets(identity, project_id, user_id, role_id))
    identity.forget_cached(user_id=user_id, project_id=project_id)


async def check(identity: IdentityService, project_id: str, user_id: str, role_id: str) -> None:
    """NotFound unless the user holds the role on the project."""
    if not await repo.has_assignment(
        identity.store, *await _targets(identity, project_id, user_id, role_id)
    ):
        raise NotFound("Could not find role assignment.")


async def revoke(identity: IdentityService, project_id: str, user_id: str, role_id: str) -> None:
    """Take the role away; the user's tokens for the project now carry fewer roles, or none
    (then they are invalid)."""
    if not await repo.revoke(
        identity.store, *await _targets(identity, project_id, user_id, role_id)
    ):
        raise NotFound("Could not find role assignment.")
    identity.forget_cached(user_id=user_id, project_id=project_id)


async def list_assignments(
    identity: IdentityService,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    role_id: str | None = None,
) -> list[dict[str, Any]]:
    """Assignments (ids and names) by user, project and role name; each id narrows them."""
    return await repo.list_assignments(
        identity.store,
        user_id=user_id,
        project_id=project_id,
        role_id=role_id,
        hidden_users=HIDDEN,
    )
