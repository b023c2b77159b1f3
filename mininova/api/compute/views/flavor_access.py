"""Flavor access view: the projects on a private flavor's access list."""

from __future__ import annotations

from collections.abc import Iterable


def access_list(flavor_id: str, project_ids: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p} for p in project_ids]}
