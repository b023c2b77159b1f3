"""Users (Keystone's identity backend): create, change, delete, list.

Policy is the API's; these functions check the objects' own rules and raise domain errors.
A new password or a disable revokes the user's tokens; a new password or an enable lifts a
lockout (see `login_limits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mininova.errors import Conflict, Invalid, NotFound
from mininova.identity.passwords import hash_async
from mininova.identity.service import new_id
from mininova.store import identity as repo
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.identity.service import IdentityService

# Left out of listings (release 0.1's internal user; the upgrade deletes it).
HIDDEN = ("mininova-service",)
# mininova's own users, never deleted.
PROTECTED = ("admin", "mininova-service")


def _duplicate(name: str) -> Conflict:
    return Conflict(
        f"Conflict occurred attempting to store user - Duplicate entry found with name {name}."
    )


async def get(identity: IdentityService, user_id: str) -> dict[str, Any]:
    row = await repo.get_user(identity.store, user_id)
    if row is None:
        raise NotFound(f"Could not find user: {user_id}.")
    return row


async def list_users(identity: IdentityService, *, name: str | None = None) -> list[dict[str, Any]]:
    rows = await repo.list_users(identity.store, hidden=HIDDEN)
    if name is not None:
        rows = [row for row in rows if row["name"] == name]
    return rows


async def create(
    identity: IdentityService,
    *,
    name: str,
    password: str | None = None,
    default_project_id: str | None = None,
    email: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """A new user; without a password nobody can log in as them until one is set."""
    user_id = new_id()
    password_hash = await hash_async(password or new_id())
    async with identity.store.transaction() as tx:
        await tx.lock(repo.NAMES_LOCK)
        if default_project_id and await repo.get_project(tx, default_project_id) is None:
            raise Invalid(f"Could not find project: {default_project_id}.")
        if await repo.user_by_name(tx, name) is not None:
            raise _duplicate(name)
        await repo.insert_user(
            tx,
            {
                "id": user_id,
                "name": name,
                "password_hash": password_hash,
                "default_project_id": default_project_id,
                "email": email,
                "enabled": enabled,
                "created_at": now_iso(),
            },
        )
        row = await repo.get_user(tx, user_id)
    assert row is not None
    return row


async def update(
    identity: IdentityService, user_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change `name`, `email`, `default_project_id`, `enabled` and/or `password`."""
    values = {
        k: changes[k] for k in ("name", "email", "default_project_id", "enabled") if k in changes
    }
    revoke = "enabled" in changes and not changes["enabled"]
    if isinstance(changes.get("password"), str):
        values["password_hash"] = await hash_async(changes["password"])
        revoke = True
    async with identity.store.transaction() as tx:
        await tx.lock(repo.NAMES_LOCK)
        row = await repo.get_user(tx, user_id)
        if row is None:
            raise NotFound(f"Could not find user: {user_id}.")
        if "name" in values and values["name"] != row["name"]:
            if await repo.user_by_name(tx, values["name"]) is not None:
                raise _duplicate(values["name"])
        await repo.update_user(tx, user_id, values)
        if revoke:
            await repo.delete_user_tokens(tx, user_id)
        row = await repo.get_user(tx, user_id)
        assert row is not None
    identity.forget_cached(user_id=user_id)  # tokens carry the user's name
    if "password_hash" in values or values.get("enabled"):
        identity.limits.reset_user(user_id)  # an admin's way to lift a lockout
    return row


async def delete(identity: IdentityService, user_id: str) -> None:
    """Delete a user with their tokens and role assignments."""
    async with identity.store.transaction() as tx:
        row = await repo.get_user(tx, user_id)
        if row is None:
            raise NotFound(f"Could not find user: {user_id}.")
        if row["name"] in PROTECTED:
            raise Conflict(f"User {row['name']} is needed by mininova itself.")
        await repo.delete_user_tokens(tx, user_id)
        await repo.delete_user(tx, user_id)
    identity.forget_cached(user_id=user_id)
