"""Projects (Keystone's resource backend): create, change, delete, list.

Policy (who may call these) is the API's; these functions check the objects' own rules and
raise domain errors. Changes that affect issued tokens revoke or re-read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mininova.errors import Conflict, Invalid, NotFound
from mininova.identity.service import new_id
from mininova.store import identity as repo
from mininova.store import instances
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.identity.service import IdentityService
    from mininova.store.engine import Transaction

# mininova's own projects, never deleted.
PROTECTED = ("admin", "service")
# Keystone's limit on the tags of one project.
MAX_TAGS = 80


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


@dataclass(frozen=True)
class TagFilter:
    """Keystone's tag filters on a project list; each empty one lets every project through."""

    all: tuple[str, ...] = ()  # `tags`: has every one
    any: tuple[str, ...] = ()  # `tags-any`: has at least one
    not_all: tuple[str, ...] = ()  # `not-tags`: lacks at least one
    not_any: tuple[str, ...] = ()  # `not-tags-any`: has none

    def admits(self, tags: list[str]) -> bool:
        have = set(tags)
        return (
            have.issuperset(self.all)
            and (not self.any or not have.isdisjoint(self.any))
            and (not self.not_all or not have.issuperset(self.not_all))
            and have.isdisjoint(self.not_any)
        )


def unique_tags(tags: list[str]) -> list[str]:
    """The tags in their first order, each once (Keystone ignores a repeated tag)."""
    return list(dict.fromkeys(tags))


def _too_many(count: int) -> Invalid:
    return Invalid(
        f"Invalid input for field 'tags': a project can have at most {MAX_TAGS} tags, not {count}."
    )


async def list_visible(
    identity: IdentityService,
    *,
    user_id: str,
    all_projects: bool,
    name: str | None = None,
    tags: TagFilter | None = None,
) -> list[dict[str, Any]]:
    """Every project (`all_projects`) or those where the user holds a role, by name and tags
    (filtered here: there are few projects)."""
    rows = await repo.list_projects(identity.store, member=None if all_projects else user_id)
    if name is not None:
        rows = [row for row in rows if row["name"] == name]
    if tags is not None:
        rows = [row for row in rows if tags.admits(row["tags"])]
    return rows


async def list_for_user(identity: IdentityService, user_id: str) -> list[dict[str, Any]]:
    """The projects where the user holds any role (Keystone's /v3/auth/projects), by name."""
    return await repo.list_projects(identity.store, member=user_id)


async def create(
    identity: IdentityService,
    *,
    name: str,
    description: str = "",
    enabled: bool = True,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    tags = unique_tags(tags or [])
    if len(tags) > MAX_TAGS:
        raise _too_many(len(tags))
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
                "tags": tags,
            },
        )
        row = await repo.get_project(tx, project_id)
    assert row is not None
    return row


async def update(
    identity: IdentityService, project_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change `name`, `description`, `enabled` and/or `tags` (the whole list); disabling
    revokes the project's tokens (re-enabling does not revive them, as in Keystone)."""
    changes = dict(changes)
    if "tags" in changes:
        changes["tags"] = unique_tags(changes["tags"])
        if len(changes["tags"]) > MAX_TAGS:
            raise _too_many(len(changes["tags"]))
    async with identity.store.transaction() as tx:
        await tx.lock(repo.NAMES_LOCK)
        if "tags" in changes:  # the same lock as add_tag and remove_tag
            await tx.lock(_tags_lock(project_id))
        row = await _row(tx, project_id)
        if "name" in changes and changes["name"] != row["name"]:
            if await repo.project_by_name(tx, changes["name"]) is not None:
                raise _duplicate(changes["name"])
        values = {k: changes[k] for k in ("name", "description", "enabled", "tags") if k in changes}
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


# ---- tags (Keystone's /v3/projects/{id}/tags) ------------------------------------------------


async def set_tags(identity: IdentityService, project_id: str, tags: list[str]) -> list[str]:
    """Replace the project's tags (a repeated tag counts once); the new list."""
    row = await update(identity, project_id, {"tags": tags})
    return row["tags"]


async def add_tag(identity: IdentityService, project_id: str, tag: str) -> list[str]:
    """Add one tag (nothing changes if the project has it already); the new list."""
    async with identity.store.transaction() as tx:
        await tx.lock(_tags_lock(project_id))
        tags = (await _row(tx, project_id))["tags"]
        if tag in tags:
            return tags
        tags = [*tags, tag]
        if len(tags) > MAX_TAGS:
            raise _too_many(len(tags))
        await repo.update_project(tx, project_id, {"tags": tags})
    return tags


async def remove_tag(identity: IdentityService, project_id: str, tag: str) -> None:
    """Take one tag away (NotFound if the project does not have it)."""
    async with identity.store.transaction() as tx:
        await tx.lock(_tags_lock(project_id))
        tags = (await _row(tx, project_id))["tags"]
        if tag not in tags:
            raise NotFound(f"Could not find project tag: {tag}.")
        await repo.update_project(tx, project_id, {"tags": [t for t in tags if t != tag]})


async def _row(tx: Transaction, project_id: str) -> dict[str, Any]:
    row = await repo.get_project(tx, project_id)
    if row is None:
        raise NotFound(f"Could not find project: {project_id}.")
    return row


def _tags_lock(project_id: str) -> str:
    return f"identity:project-tags:{project_id}"
