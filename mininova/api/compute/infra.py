"""Compute API: infrastructure resources.

- infra_hosts: os-services, os-hypervisors, os-availability-zone
- infra_quota: limits, os-quota-sets
- infra_misc: extensions, os-networks, os-floating-ip-pools
"""

from __future__ import annotations

from aiohttp import web

from mininova.api.compute import infra_hosts, infra_misc, infra_quota
from mininova.api.compute.infra_misc import PRIVATE_NETWORK_ID, PRIVATE_NETWORK_NAME

__all__ = ["PRIVATE_NETWORK_ID", "PRIVATE_NETWORK_NAME", "setup"]


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    """Register this module's routes."""
    infra_hosts.setup(router, prefix)
    infra_quota.setup(router, prefix)
    infra_misc.setup(router, prefix)
