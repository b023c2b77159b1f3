"""Network API: floating IPs. A project allocates an address from an external network's
subnet pools and maps it to one of its servers' ports (the port's fixed IP); the hosts' agents
make the mapping real (NAT), told through `conductor.sync_network` after every change.

Records in `mininova.store.floating_ips`; ports are the derived server ports of `model.py`.
Schemas in `schemas/floatingips.py`, views in `views/floatingips.py`.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.context import context, services
from mininova.api.network import listing, model
from mininova.api.network.common import body_of, owner
from mininova.api.network.errors import NeutronFault, neutron_handler, not_found
from mininova.api.network.networks import find as find_network
from mininova.api.network.schemas import floatingips as schemas
from mininova.api.network.views import floatingips as views
from mininova.api.responses import json_response
from mininova.store import floating_ips as repo
from mininova.store import instances
from mininova.store import networks as network_repo
from mininova.store.engine import Row
from mininova.timeutil import now_iso

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _not_found(fip_id: str) -> NeutronFault:
    return NeutronFault("FloatingIPNotFound", 404, f"Floating IP {fip_id} could not be found")


def _bad(message: str) -> NeutronFault:
    """Neutron's `BadRequest(resource='floatingip')`."""
    return NeutronFault("BadRequest", 400, f"Bad floatingip request: {message}.")


async def _find(request: web.Request, fip_id: str) -> Row:
    """The floating IP the caller may see (its project's; admins: any), else 404."""
    ctx = context(request)
    row = await repo.get(services(request).store, fip_id)
    if row is None or not (ctx.is_admin or row["project_id"] == ctx.project_id):
        raise _not_found(fip_id)
    return row


async def _ports(request: web.Request) -> dict[str, dict[str, Any]]:
    """The server ports the caller may see, by id."""
    records = await model.visible_ports(services(request).store, context(request))
    return {port["id"]: port for port in records}


def _view(row: Row, ports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return views.floatingip(row, ports.get(row["port_id"] or ""))


# ---- reads ------------------------------------------------------------------------------------


@neutron_handler
async def list_floatingips(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    query = listing.parse(request, views.ATTRIBUTES)
    rows = await repo.list_floating_ips(svc.store, None if ctx.is_admin else ctx.project_id)
    ports = await _ports(request) if any(r["port_id"] for r in rows) else {}
    items = [_view(row, ports) for row in rows]
    return json_response(listing.select(request, items, query, "floatingips", _not_found))


@neutron_handler
async def show_floatingip(request: web.Request) -> web.Response:
    row = await _find(request, request.match_info["floatingip_id"])
    view = _view(row, await _ports(request))
    return json_response({"floatingip": listing.only(view, listing.fields_of(request))})


# ---- allocation ---------------------------------------------------------------------------------


def _pool_addresses(subnet: Row) -> Iterator[Address]:
    """The subnet's allocation pools, address by address (its gateway left out)."""
    gateway = ipaddress.ip_address(subnet["gateway_ip"]) if subnet["gateway_ip"] else None
    for pool in subnet["allocation_pools"]:
        address = ipaddress.ip_address(pool["start"])
        end = ipaddress.ip_address(pool["end"])
        while address <= end:
            if address != gateway:
                yield address
            address += 1


def _in_pools(subnet: Row, address: Address) -> bool:
    if subnet["gateway_ip"] and address == ipaddress.ip_address(subnet["gateway_ip"]):
        return False
    return any(
        ipaddress.ip_address(pool["start"]) <= address <= ipaddress.ip_address(pool["end"])
        for pool in subnet["allocation_pools"]
    )


async def _subnets(request: web.Request, network_id: str, subnet_id: str | None) -> list[Row]:
    """The IPv4 subnets to allocate from: the given one (on this network), else all of it."""
    found = [
        s
        for s in await network_repo.list_subnets(services(request).store)
        if s["network_id"] == network_id and s["ip_version"] == 4
    ]
    if subnet_id is None:
        return found
    chosen = [s for s in found if s["id"] == subnet_id]
    if not chosen:
        if await network_repo.get_subnet(services(request).store, subnet_id) is None:
            raise not_found("Subnet", subnet_id)
        raise _bad(f"Subnet {subnet_id} is not an IPv4 subnet of network {network_id}")
    return chosen


def _address(
    subnets: list[Row], text: str | None, taken: set[str], network_id: str
) -> dict[str, Any]:
    """(subnet, address) for a new floating IP: the asked-for address, or the first free one."""
    if text is not None:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise NeutronFault(
                "HTTPBadRequest",
                400,
                f"Invalid input for floating_ip_address. Reason: '{text}' is not a valid IP "
                "address.",
            ) from None
        for subnet in subnets:
            if address in ipaddress.ip_network(subnet["cidr"]):
                if not _in_pools(subnet, address):
                    raise NeutronFault(
                        "InvalidIpForSubnet",
                        400,
                        f"IP address {address} is not a valid IP for the specified subnet.",
                    )
                if str(address) in taken:
                    raise NeutronFault(
                        "IpAddressAlreadyAllocated",
                        409,
                        f"IP address {address} already allocated in subnet {subnet['id']}",
                    )
                return {"subnet": subnet, "address": str(address)}
        raise NeutronFault(
            "InvalidIpForNetwork",
            400,
            f"IP address {address} is not a valid IP for any of the subnets on the specified "
            "network.",
        )
    for subnet in subnets:
        for address in _pool_addresses(subnet):
            if str(address) not in taken:
                return {"subnet": subnet, "address": str(address)}
    raise NeutronFault(
        "ExternalIpAddressExhausted",
        400,
        f"Unable to find any IP address on external network {network_id}.",
    )


# ---- association --------------------------------------------------------------------------------


async def _target(
    request: web.Request, fip_project: str, port_id: str, fixed_ip: str | None
) -> tuple[dict[str, Any], str]:
    """(port record, fixed IPv4) a floating IP of `fip_project` may be mapped to."""
    ctx = context(request)
    port = (await _ports(request)).get(port_id)
    if port is None or not (ctx.is_admin or port["project_id"] == fip_project):
        raise not_found("Port", port_id)
    v4 = [
        ip["ip_address"]
        for ip in port["fixed_ips"]
        if ipaddress.ip_address(ip["ip_address"]).version == 4
    ]
    if fixed_ip is None:
        if not v4:
            raise _bad(f"Cannot add floating IP to port {port_id} that has no fixed IPv4 addresses")
        if len(v4) > 1:
            raise _bad(
                f"Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific "
                "IPv4 address when assigning a floating IP"
            )
        return port, v4[0]
    if fixed_ip not in v4:
        raise _bad(f"Port {port_id} does not have fixed ip {fixed_ip}")
    return port, fixed_ip


async def _check_free(request: web.Request, fip: Row, port: dict[str, Any], fixed_ip: str) -> None:
    """409 when this fixed IP already has another floating IP from the same network."""
    other = await repo.on_fixed_ip(
        services(request).store, fip["floating_network_id"], port["id"], fixed_ip
    )
    if other is not None and other["id"] != fip["id"]:
        raise NeutronFault(
            "FloatingIPPortAlreadyAssociated",
            409,
            f"Cannot associate floating IP {fip['floating_ip_address']} ({fip['id']}) with "
            f"port {port['id']} using fixed IP {fixed_ip}, as that fixed IP already has a "
            f"floating IP on external network {fip['floating_network_id']}.",
        )


async def _host_of(request: web.Request, instance_uuid: str | None) -> str | None:
    if instance_uuid is None:
        return None
    inst = await instances.get(services(request).store, instance_uuid, include_deleted=True)
    return inst["host"] if inst is not None else None


def _sync(request: web.Request, hosts: list[str | None]) -> None:
    """Tell the agents of these hosts that their floating-IP state changed."""
    wanted = [h for h in hosts if h]
    if wanted:
        services(request).conductor.sync_network(wanted)


# ---- writes -------------------------------------------------------------------------------------


def _over_quota() -> NeutronFault:
    return NeutronFault("OverQuota", 409, "Quota exceeded for resources: ['floatingip'].")


@neutron_handler
async def create_floatingip(request: web.Request) -> web.Response:
    svc, ctx = services(request), context(request)
    given = await body_of(request, "floatingip", schemas.ATTRIBUTES, schemas.CREATE)
    network = await find_network(request, given["floating_network_id"])
    if not network["external"]:
        raise _bad(f"Network {network['id']} is not a valid external network")
    project = owner(ctx.project_id, given, ctx.is_admin)
    subnets = await _subnets(request, network["id"], given.get("subnet_id"))
    target = None
    if given.get("port_id"):
        target = await _target(request, project, given["port_id"], given.get("fixed_ip_address"))
    elif given.get("fixed_ip_address"):
        raise _bad("fixed_ip_address cannot be specified without a port_id")
    fip_id, now = str(uuid.uuid4()), now_iso()
    async with svc.store.transaction() as tx:
        await tx.lock(f"quota:{project}")
        await tx.lock(f"floatingips:{network['id']}")
        limit = (await quota.get_limits(tx, project))["floating_ips"]
        if limit >= 0 and await repo.count_in_project(tx, project) + 1 > limit:
            raise _over_quota()
        taken = await repo.addresses_in_use(tx, network["id"])
        chosen = _address(subnets, given.get("floating_ip_address"), taken, network["id"])
        values = {
            "id": fip_id,
            "project_id": project,
            "floating_network_id": network["id"],
            "subnet_id": chosen["subnet"]["id"],
            "floating_ip_address": chosen["address"],
            "port_id": None,
            "instance_uuid": None,
            "fixed_ip_address": None,
            "description": given.get("description", ""),
            "revision_number": 0,
            "created_at": now,
            "updated_at": now,
        }
        if target is not None:
            port, fixed_ip = target
            await _check_free(request, values, port, fixed_ip)
            values.update(port_id=port["id"], instance_uuid=port["device_id"])
            values["fixed_ip_address"] = fixed_ip
        await repo.insert(tx, values)
    if target is not None:
        _sync(request, [target[0]["host"]])
    row = await _find(request, fip_id)
    return json_response({"floatingip": _view(row, await _ports(request))}, status=201)


@neutron_handler
async def update_floatingip(request: web.Request) -> web.Response:
    svc = services(request)
    fip = await _find(request, request.match_info["floatingip_id"])
    given = await body_of(request, "floatingip", schemas.UPDATE_ATTRIBUTES, schemas.UPDATE)
    if "port_id" not in given and given.get("fixed_ip_address"):
        raise _bad("fixed_ip_address cannot be specified without a port_id")
    hosts: list[str | None] = []
    async with svc.store.transaction() as tx:
        if "description" in given:
            await repo.set_description(tx, fip["id"], given["description"])
        if "port_id" in given and given["port_id"] is None:
            if fip["port_id"] is not None:
                await repo.disassociate(tx, fip["id"])
                hosts.append(await _host_of(request, fip["instance_uuid"]))
        elif "port_id" in given:
            port, fixed_ip = await _target(
                request, fip["project_id"], given["port_id"], given.get("fixed_ip_address")
            )
            await tx.lock(f"floatingips:{fip['floating_network_id']}")
            await _check_free(request, fip, port, fixed_ip)
            if (fip["port_id"], fip["fixed_ip_address"]) != (port["id"], fixed_ip):
                await repo.associate(tx, fip["id"], port["id"], port["device_id"], fixed_ip)
                hosts += [await _host_of(request, fip["instance_uuid"]), port["host"]]
    _sync(request, hosts)
    row = await _find(request, fip["id"])
    return json_response({"floatingip": _view(row, await _ports(request))})


@neutron_handler
async def delete_floatingip(request: web.Request) -> web.Response:
    svc = services(request)
    fip = await _find(request, request.match_info["floatingip_id"])
    await repo.delete_floating_ip(svc.store, fip["id"])
    if fip["port_id"] is not None:
        _sync(request, [await _host_of(request, fip["instance_uuid"])])
    return web.Response(status=204)


# ---- what other resources ask ---------------------------------------------------------------------


async def quota_usage(request: web.Request, project_id: str) -> tuple[int, int]:
    """(limit, used) of the project's `floatingip` quota."""
    store = services(request).store
    limit = (await quota.get_limits(store, project_id))["floating_ips"]
    return limit, await repo.count_in_project(store, project_id)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/floatingips", list_floatingips)
    router.add_post(prefix + "/floatingips", create_floatingip)
    router.add_get(prefix + "/floatingips/{floatingip_id}", show_floatingip)
    router.add_put(prefix + "/floatingips/{floatingip_id}", update_floatingip)
    router.add_delete(prefix + "/floatingips/{floatingip_id}", delete_floatingip)
