"""Compute API: /extensions (the fixed list of extensions Nova still reports)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova.api.errors import NotFound
from mininova.api.responses import json_response

# (name, alias, description) as Nova's fixed list has them, for what mininova serves (and
# `Hosts`, which clients probe for). Answered sorted by alias, as Nova's list is.
_EXTENSIONS: list[tuple[str, str, str]] = sorted(
    [
        ("AccessIPs", "os-access-ips", "Access IPs support."),
        ("AdminActions", "os-admin-actions", "Enable admin-only server actions."),
        ("Aggregates", "os-aggregates", "Admin-only aggregate administration."),
        (
            "AvailabilityZone",
            "os-availability-zone",
            "1. Add availability_zone to the Create Server API. "
            "2. Add availability zones describing.",
        ),
        ("ConfigDrive", "os-config-drive", "Config Drive Extension."),
        ("ConsoleOutput", "os-console-output", "Console log output support, with tailing ability."),
        ("Consoles", "os-consoles", "Interactive Console support."),
        ("ExtendedAvailabilityZone", "OS-EXT-AZ", "Extended Availability Zone support."),
        ("ExtendedIps", "OS-EXT-IPS", "Adds type parameter to the ip list."),
        ("ExtendedIpsMac", "OS-EXT-IPS-MAC", "Adds mac address parameter to the ip list."),
        (
            "ExtendedQuotas",
            "os-extended-quotas",
            "Adds ability for admins to delete quota and optionally force the update Quota "
            "command.",
        ),
        ("ExtendedServerAttributes", "OS-EXT-SRV-ATTR", "Extended Server Attributes support."),
        ("ExtendedStatus", "OS-EXT-STS", "Extended Status support."),
        ("FlavorAccess", "os-flavor-access", "Flavor access support."),
        ("FlavorDisabled", "OS-FLV-DISABLED", "Support to show the disabled status of a flavor."),
        ("FlavorExtraData", "OS-FLV-EXT-DATA", "Provide additional data for flavors."),
        ("FlavorExtraSpecs", "os-flavor-extra-specs", "Flavors extra specs support."),
        ("FlavorManage", "os-flavor-manage", "Flavor create/delete API support."),
        ("FlavorRxtx", "os-flavor-rxtx", "Support to show the rxtx status of a flavor."),
        ("FlavorSwap", "os-flavor-swap", "Support to show the swap status of a flavor."),
        ("FloatingIpPools", "os-floating-ip-pools", "Floating IPs support."),
        ("Hosts", "os-hosts", "Admin-only host administration."),
        ("Hypervisors", "os-hypervisors", "Admin-only hypervisor administration."),
        ("ImageSize", "OS-EXT-IMG-SIZE", "Adds image size to image listings."),
        (
            "InstanceActions",
            "os-instance-actions",
            "View a log of actions and events taken on an instance.",
        ),
        ("Keypairs", "os-keypairs", "Keypair Support."),
        ("LockServer", "os-lock-server", "Enable lock/unlock server actions."),
        (
            "MultipleCreate",
            "os-multiple-create",
            "Allow multiple create in the Create Server v2.1 API.",
        ),
        ("Networks", "os-networks", "Admin-only Network Management Extension."),
        ("PauseServer", "os-pause-server", "Enable pause/unpause server actions."),
        ("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
        ("Quotas", "os-quota-sets", "Quotas management support."),
        ("RemoteConsoles", "os-remote-consoles", "Interactive Console support."),
        ("SchedulerHints", "OS-SCH-HNT", "Pass arbitrary key/value pairs to the scheduler."),
        ("SecurityGroups", "os-security-groups", "Security group support."),
        ("ServerGroupQuotas", "os-server-group-quotas", "Adds quota support to server groups."),
        ("ServerGroups", "os-server-groups", "Server group support."),
        ("ServerPassword", "os-server-password", "Server password support."),
        ("ServerSortKeys", "os-server-sort-keys", "Add sorting support in get Server v2 API."),
        ("ServerStartStop", "os-server-start-stop", "Start/Stop instance compute API support."),
        ("ServerUsage", "OS-SRV-USG", "Adds launched_at and terminated_at on Servers."),
        ("Services", "os-services", "Services support."),
        ("SuspendServer", "os-suspend-server", "Enable suspend/resume server actions."),
        (
            "UsedLimits",
            "os-used-limits",
            "Provide data on limited resources that are being used.",
        ),
        ("UserData", "os-user-data", "Add user_data to the Create Server API."),
    ],
    key=lambda ext: ext[1],
)


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
    return json_response({"extensions": [_extension(*e) for e in _EXTENSIONS]})


async def show_extension(request: web.Request) -> web.Response:
    alias = request.match_info["alias"]
    for ext in _EXTENSIONS:
        if ext[1] == alias:
            return json_response({"extension": _extension(*ext)})
    raise NotFound(f"Extension {alias} could not be found.")


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/extensions", list_extensions)
    router.add_get(prefix + "/extensions/{alias}", show_extension)
