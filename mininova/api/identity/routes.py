"""Keystone v3 routes under /identity: one module per resource, wired here."""

from __future__ import annotations

from aiohttp import web

from mininova.api.identity import (
    domains,
    project_tags,
    projects,
    roles,
    tokens,
    users,
    versions,
)
from mininova.api.identity.views import PREFIX


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX, versions.versions)
    r.add_get(PREFIX + "/", versions.versions)
    r.add_get(PREFIX + "/v3", versions.version_v3)
    r.add_get(PREFIX + "/v3/", versions.version_v3)
    r.add_post(PREFIX + "/v3/auth/tokens", tokens.create_token)
    r.add_get(PREFIX + "/v3/auth/tokens", tokens.validate_token, allow_head=True)
    r.add_delete(PREFIX + "/v3/auth/tokens", tokens.revoke_token)
    r.add_get(PREFIX + "/v3/auth/projects", projects.list_auth_projects, allow_head=True)
    r.add_get(PREFIX + "/v3/projects", projects.list_projects)
    r.add_post(PREFIX + "/v3/projects", projects.create_project)
    r.add_get(PREFIX + "/v3/projects/{project_id}", projects.show_project)
    r.add_patch(PREFIX + "/v3/projects/{project_id}", projects.update_project)
    r.add_delete(PREFIX + "/v3/projects/{project_id}", projects.delete_project)
    tags = PREFIX + "/v3/projects/{project_id}/tags"
    r.add_get(tags, project_tags.list_tags, allow_head=True)
    r.add_put(tags, project_tags.replace_tags)
    r.add_delete(tags, project_tags.clear_tags)
    r.add_get(tags + "/{tag}", project_tags.check_project_tag, allow_head=True)
    r.add_put(tags + "/{tag}", project_tags.add_tag)
    r.add_delete(tags + "/{tag}", project_tags.remove_tag)
    r.add_get(PREFIX + "/v3/users", users.list_users)
    r.add_post(PREFIX + "/v3/users", users.create_user)
    r.add_get(PREFIX + "/v3/users/{user_id}", users.show_user)
    r.add_patch(PREFIX + "/v3/users/{user_id}", users.update_user)
    r.add_delete(PREFIX + "/v3/users/{user_id}", users.delete_user)
    r.add_get(PREFIX + "/v3/roles", roles.list_roles)
    r.add_get(PREFIX + "/v3/roles/{role_id}", roles.show_role)
    grant = PREFIX + "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"
    r.add_put(grant, roles.grant_role)
    r.add_head(grant, roles.check_grant)
    r.add_delete(grant, roles.revoke_role)
    r.add_get(PREFIX + "/v3/role_assignments", roles.list_role_assignments)
    r.add_get(PREFIX + "/v3/domains", domains.list_domains)
    r.add_get(PREFIX + "/v3/domains/{domain_id}", domains.show_domain)
