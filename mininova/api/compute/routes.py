"""Route table of the compute API: each resource module contributes its routes."""

from __future__ import annotations

from aiohttp import web

PREFIX = "/compute/v2.1"


def setup(app: web.Application) -> None:
    from mininova.api.compute import (
        consoles,
        flavors,
        images,
        infra,
        keypairs,
        server_actions,
        server_groups,
        servers,
        versions,
    )

    for module in (
        versions,
        servers,
        server_actions,
        server_groups,
        flavors,
        keypairs,
        infra,
        images,
        consoles,
    ):
        module.setup(app.router, PREFIX)
