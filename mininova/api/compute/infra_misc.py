"""Compute API: /extensions, the nova-network proxies os-networks and os-floating-ip-pools.

mininova has no Neutron: OSC resolves `--network private` through `GET /os-networks`
(microversion 2.1). Like Nova, the proxies are gone (404) from 2.36.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from mininova.api.context import context, mv_at_least
from mininova.api.errors import NotFound
from mininova.api.microversions import V2_36

PRIVATE_NETWORK_NAME = "private"
PRIVATE_NETWORK_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "mininova-private"))

_EXTENSIONS: list[tuple[str, str, str]] = [
    ("AdminActions", "os-admin-actions", "Enable admin-only server actions."),
    (
        "AvailabilityZone",
        "os-availability-zone",
        "1. Add availability_zone to the Create Server API. 2. Add availability zones describing.",
    ),
    ("ConsoleOutput", "os-console-output", "Console log output support, with tailing ability."),
    ("ExtendedServerAttributes", "OS-EXT-SRV-ATTR", "Extended Server Attributes support."),
    ("ExtendedStatus", "OS-EXT-STS", "Extended Status support."),
    ("FlavorAccess", "os-flavor-access", "Flavor access support."),
    ("FlavorExtraSpecs", "os-flavor-extra-specs", "Flavors extra specs support."),
    ("FlavorManage", "os-flavor-manage", "Flavor create/delete API support."),
    ("Hypervisors", "os-hypervisors", "Admin-only hypervisor administration."),
    ("Keypairs", "os-keypairs", "Keypair Support."),
    ("Quotas", "os-quota-sets", "Quotas management support."),
    ("RemoteConsoles", "os-remote-consoles", "Interactive Console support."),
    ("ServerGroups", "os-server-groups", "Server group support."),
    ("Services", "os-services", "Services support."),
]


def _extension(name: str, alias: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "alias": alias,
        "description": description,
        "namespace": "http://docs.openstack.org/compute/ext/fake_xml",
        "updated": "2014-12-03T00:00:00Z",
        "links": [],
    }


async def list_extensions(request: web.Request) -> web.Response:
    return web.json_response({"extensions": [_extension(*e) for e in _EXTENSIONS]})


async def show_extension(request: web.Request) -> web.Response:
    alias = request.match_info["alias"]
    for ext in _EXTENSIONS:
        if ext[1] == alias:
            return web.json_response({"extension": _extension(*ext)})
    raise NotFound(f"Extension {alias} could not be found.")


_BASIC_FIELDS = (
    "id",
    "cidr",
    "netmask",
    "gateway",
    "broadcast",
    "dns1",
    "dns2",
    "cidr_v6",
    "gateway_v6",
    "label",
    "netmask_v6",
)
_ADMIN_FIELDS = (
    "created_at",
    "updated_at",
    "deleted_at",
    "deleted",
    "injected",
    "bridge",
    "vlan",
    "vpn_public_address",
    "vpn_public_port",
    "vpn_private_address",
    "dhcp_start",
    "project_id",
    "host",
    "bridge_interface",
    "multi_host",
    "priority",
    "rxtx_base",
    "mtu",
    "dhcp_server",
    "enable_dhcp",
    "share_address",
)


def network_view(request: web.Request) -> dict[str, Any]:
    fields = _BASIC_FIELDS + (_ADMIN_FIELDS if context(request).is_admin else ())
    view: dict[str, Any] = dict.fromkeys(fields)
    view["id"] = PRIVATE_NETWORK_ID
    view["label"] = PRIVATE_NETWORK_NAME
    return view


def _proxy_gone(request: web.Request) -> None:
    if mv_at_least(request, V2_36):
        raise NotFound("The resource could not be found.")


async def list_networks(request: web.Request) -> web.Response:
    _proxy_gone(request)
    return web.json_response({"networks": [network_view(request)]})


async def show_network(request: web.Request) -> web.Response:
    _proxy_gone(request)
    if request.match_info["network_id"] != PRIVATE_NETWORK_ID:
        raise NotFound("Network could not be found.")
    return web.json_response({"network": network_view(request)})


async def list_floating_ip_pools(request: web.Request) -> web.Response:
    _proxy_gone(request)
    return web.json_response({"floating_ip_pools": []})


async def list_aggregates(request: web.Request) -> web.Response:
    """Host aggregates are not modelled: every host is in the single `nova` zone."""
    context(request).require_admin("os_compute_api:os-aggregates:index")
    return web.json_response({"aggregates": []})


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-aggregates", list_aggregates)
    router.add_get(prefix + "/extensions", list_extensions)
    router.add_get(prefix + "/extensions/{alias}", show_extension)
    router.add_get(prefix + "/os-networks", list_networks)
    router.add_get(prefix + "/os-networks/{network_id}", show_network)
    router.add_get(prefix + "/os-floating-ip-pools", list_floating_ip_pools)
