"""Projects (Keystone's resource backend): create, change, delete, list.

Policy (who may call these) is the API's; these functions check the objects' own rules and
raise domain errors. Changes that affect issued tokens revoke or re-read them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mininova.errors import Conflict, NotFound
from mininova.identity.service import new_id
from mininova.store import identity as repo
from mininova.store import instances
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.identity.service import IdentityService

# mininova's own projects, never deleted.
PROTECTED = ("admin", "service")


def _duplicate(name: str) -> Conflict:
    return Conflict(
        f"Conflict occurred attempting to store project - "
        f"it is not permitted to have two projects with the same name "
        f"in the same domain : {name}."
    )


async def get(identity: IdentityService, project_id: str) -> dict[str, Any]:
    row = await repo.get_project(identity.store, project_id)
    if row is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return row


async def list_visible(
    identity: IdentityService, *, user_id: str, all_projects: bool, name: str | None = None
) -> list[dict[str, Any]]:
    """Every project (`all_projects`) or those where the user holds a role, by name."""
    rows = await repo.list_projects(identity.store, member=None if all_projects else user_id)
    if name is not None:
        rows = [row for row in rows if row["name"] == name]
    return rows


async def create(
    identity: IdentityService, *, name: str, description: str = "", enabled: bool = True
) -> dict[str, Any]:
    project_id = new_id()
    async with identity.store.transaction() as tx:
        await tx.lock(repo.NAMES_LOCK)
        if await repo.project_by_name(tx, name) is not None:
            raise _duplicate(name)
        await repo.insert_project(
            tx,
            {
                "id": project_id,
                "name": name,
                "description": description,
                "enabled": enabled,
                "created_at": now_iso(),
            },
        )
        row = await repo.get_project(tx, project_id)
    assert row is not None
    return row


async def update(
    identity: IdentityService, project_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change `name`, `description` and/or `enabled`; disabling revokes the project's tokens
    (re-enabling does not revive them, as in Keystone)."""
    async with identity.store.transaction() as tx:
        await tx.lock(repo.NAMES_LOCK)
        row = await repo.get_project(tx, project_id)
        if row is None:
            raise NotFound(f"Could not find project: {project_id}.")
        if "name" in changes and changes["name"] != row["name"]:
            if await repo.project_by_name(tx, changes["name"]) is not None:
                raise _duplicate(changes["name"])
        values = {k: changes[k] for k in ("name", "description", "enabled") if k in changes}
        await repo.update_project(tx, project_id, values)
        row = await repo.get_project(tx, project_id)
        assert row is not None
        if not row["enabled"]:
            await repo.delete_project_tokens(tx, project_id)
    identity.forget_cached(project_id=project_id)  # tokens carry the project's name
    return row


async def delete(identity: IdentityService, project_id: str) -> None:
    """Delete a project without servers; its tokens and role assignments go with it."""
    async with identity.store.transaction() as tx:
        row = await repo.get_project(tx, project_id)
        if row is None:
            raise NotFound(f"Could not find project: {project_id}.")
        if row["name"] in PROTECTED:
            raise Conflict(f"Project {row['name']} is needed by mininova itself.")
        live = await instances.count_live_in_project(tx, project_id)
        if live:
            raise Conflict(f"Project {project_id} still has {live} server(s).")
        await repo.delete_project(tx, project_id)
        await repo.delete_project_tokens(tx, project_id)
    identity.forget_cached(project_id=project_id)
