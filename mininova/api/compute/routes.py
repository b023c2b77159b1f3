"""Route table of the compute API: each resource module contributes its routes."""

from __future__ import annotations

from aiohttp import web

PREFIX = "/compute/v2.1"


def setup(app: web.Application) -> None:
    from mininova.api.compute import (
        aggregates,
        availability_zones,
        consoles,
        extensions,
        flavor_access,
        flavor_extra_specs,
        flavors,
        floating_ip_pools,
        hypervisors,
        images,
        infra_quota,
        keypairs,
        migrations,
        networks,
        security_groups,
        server_actions,
        server_groups,
        server_password,
        servers,
        services,
        versions,
    )

    for module in (
        versions,
        servers,
        server_actions,
        server_groups,
        flavors,
        flavor_access,
        flavor_extra_specs,
        keypairs,
        services,
        hypervisors,
        availability_zones,
        infra_quota,
        aggregates,
        extensions,
        networks,
        floating_ip_pools,
        images,
        consoles,
        security_groups,
        server_password,
        migrations,
    ):
        module.setup(app.router, PREFIX)
