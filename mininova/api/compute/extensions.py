"""Compute API: /extensions (the fixed list of extensions Nova still reports)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.errors import NotFound

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


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/extensions", list_extensions)
    router.add_get(prefix + "/extensions/{alias}", show_extension)
