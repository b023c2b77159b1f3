"""Network API: subnets. `private` has its one subnet (the libvirt network's definition);
admins add subnets on external networks: CIDR, gateway and pools checked, no overlap with any
other subnet (every network here is reachable from the hosts, so addresses must stay unique).

Schemas in `schemas/subnets.py`, views in `views/subnets.py`, records in `model.py`.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from aiohttp import web

from mininova.api.context import context, services
from mininova.api.network import listing, model
from mininova.api.network.common import body_of, owner
from mininova.api.network.errors import (
    NeutronFault,
    bad_request,
    invalid_input,
    neutron_handler,
    not_found,
    policy_denied,
)
from mininova.api.network.networks import find as find_network
from mininova.api.network.schemas import subnets as schemas
from mininova.api.network.views import subnets as views
from mininova.api.responses import json_response
from mininova.store import floating_ips
from mininova.store import networks as repo
from mininova.timeutil import now_iso

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _not_found(subnet_id: str) -> NeutronFault:
    return not_found("Subnet", subnet_id)


async def _find(request: web.Request, subnet_id: str) -> dict[str, Any]:
    svc = services(request)
    for record in await model.visible_subnets(svc.store, context(request)):
        if record["id"] == subnet_id:
            return record
    raise _not_found(subnet_id)


@neutron_handler
async def list_subnets(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.ATTRIBUTES)
    items = [views.subnet(r) for r in await model.visible_subnets(svc.store, ctx)]
    return json_response(listing.select(request, items, query, "subnets", _not_found))


@neutron_handler
async def show_subnet(request: web.Request) -> web.Response:
    view = views.subnet(await _find(request, request.match_info["subnet_id"]))
    return json_response({"subnet": listing.only(view, listing.fields_of(request))})


def _cidr(text: str, version: int) -> Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise bad_request(
            f"Invalid input for cidr. Reason: '{text}' is not a valid IP subnet."
        ) from None
    if "/" not in text or str(net) != text.strip():
        raise bad_request(
            f"Invalid input for cidr. Reason: '{text}' isn't a recommended CIDR, "
            f"'{net}' is recommended."
        )
    if net.version != version:
        raise invalid_input("Cidr and IP version are not the same")
    if net.num_addresses < 4 and version == 4:
        raise invalid_input(f"Invalid CIDR {net} for IP version {version}")
    return net


def _address(text: str, field: str) -> Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise bad_request(
            f"Invalid input for {field}. Reason: '{text}' is not a valid IP address."
        ) from None


def _hosts(net: Network) -> tuple[Address, Address]:
    """First and last usable address (network and, for IPv4, broadcast excluded)."""
    last = net.broadcast_address - 1 if net.version == 4 else net.broadcast_address
    return net.network_address + 1, last


def _gateway(given: dict[str, Any], net: Network) -> Address | None:
    if "gateway_ip" in given and given["gateway_ip"] is None:
        return None
    if given.get("gateway_ip") in (None, ""):
        return _hosts(net)[0]
    gateway = _address(given["gateway_ip"], "gateway_ip")
    if gateway not in net or gateway in (net.network_address, net.broadcast_address):
        raise invalid_input(f"Gateway IP {gateway} is not valid on subnet {net}")
    return gateway


def _pools(given: dict[str, Any], net: Network, gateway: Address | None) -> list[dict[str, str]]:
    first, last = _hosts(net)
    if not given.get("allocation_pools"):
        if gateway is None or not first <= gateway <= last:
            return [{"start": str(first), "end": str(last)}]
        pools = []
        if gateway > first:
            pools.append({"start": str(first), "end": str(gateway - 1)})
        if gateway < last:
            pools.append({"start": str(gateway + 1), "end": str(last)})
        return pools
    out: list[dict[str, str]] = []
    ranges: list[tuple[Address, Address]] = []
    for pool in given["allocation_pools"]:
        start = _address(pool["start"], "allocation_pools")
        end = _address(pool["end"], "allocation_pools")
        if start > end or not (first <= start and end <= last):
            raise NeutronFault(
                "OutOfBoundsAllocationPool",
                400,
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {net}.",
            )
        if gateway is not None and start <= gateway <= end:
            raise NeutronFault(
                "GatewayConflictWithAllocationPools",
                409,
                f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
            )
        for other_start, other_end in ranges:
            if start <= other_end and other_start <= end:
                raise NeutronFault(
                    "OverlappingAllocationPools",
                    409,
                    f"Found overlapping allocation pools: {other_start}-{other_end} and "
                    f"{start}-{end} for subnet {net}.",
                )
        ranges.append((start, end))
        out.append({"start": str(start), "end": str(end)})
    return out


@neutron_handler
async def create_subnet(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(request, "subnet", schemas.ATTRIBUTES, schemas.CREATE)
    network = await find_network(request, given["network_id"])
    if not ctx.is_admin:
        raise policy_denied("rule:create_subnet")
    if network["private"]:
        raise invalid_input(
            f"network {network['id']} is the compute hosts' libvirt network; its one subnet "
            "cannot be changed"
        )
    version = int(given.get("ip_version", 4))
    net = _cidr(given["cidr"], version)
    gateway = _gateway(given, net)
    pools = _pools(given, net, gateway)
    for ns in given.get("dns_nameservers", []):
        _address(ns, "dns_nameservers")
    for other in await model.visible_subnets(svc.store, ctx):
        other_net = ipaddress.ip_network(other["cidr"])
        if other_net.version == net.version and other_net.overlaps(net):
            raise invalid_input(
                f"Requested subnet with cidr: {net} for network: {network['id']} overlaps "
                f"with another subnet ({other['cidr']} of network {other['network_id']})"
            )
    now = now_iso()
    values = {
        "id": str(uuid.uuid4()),
        "network_id": network["id"],
        "name": given.get("name", ""),
        "project_id": owner(ctx.project_id, given, ctx.is_admin),
        "description": given.get("description", ""),
        "ip_version": version,
        "cidr": str(net),
        "gateway_ip": str(gateway) if gateway is not None else None,
        "enable_dhcp": int(given.get("enable_dhcp", True)),
        "allocation_pools": pools,
        "dns_nameservers": list(given.get("dns_nameservers", [])),
        "host_routes": list(given.get("host_routes", [])),
        "created_at": now,
        "updated_at": now,
    }
    await repo.insert_subnet(svc.store, values)
    return json_response({"subnet": views.subnet(await _find(request, values["id"]))}, status=201)


@neutron_handler
async def delete_subnet(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    record = await _find(request, request.match_info["subnet_id"])
    if not ctx.is_admin:
        raise policy_denied("rule:delete_subnet")
    private_network, _ = await repo.private_ids(svc.store)
    if record["network_id"] == private_network:
        raise NeutronFault(
            "SubnetInUse",
            409,
            f"Unable to complete operation on subnet {record['id']}: it is the compute hosts' "
            "libvirt network and cannot be deleted.",
        )
    if await floating_ips.count_on_subnet(svc.store, record["id"]):
        raise NeutronFault(
            "SubnetInUse",
            409,
            f"Unable to complete operation on subnet {record['id']}: "
            "One or more floating IPs are allocated from it.",
        )
    await repo.delete_subnet(svc.store, record["id"])
    return web.Response(status=204)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/subnets", list_subnets)
    router.add_post(prefix + "/subnets", create_subnet)
    router.add_get(prefix + "/subnets/{subnet_id}", show_subnet)
    router.add_delete(prefix + "/subnets/{subnet_id}", delete_subnet)
