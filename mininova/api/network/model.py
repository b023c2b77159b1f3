"""What the network API shows, as plain records: the `private` network and subnet (the hosts'
libvirt network), the stored networks and subnets, and one port per server NIC.

`private` is a compatibility view, not something mininova manages: every guest gets one NIC on
the agent's libvirt network (`libvirt_network`, "default": 192.168.122.0/24, gateway .1, DHCP
.2-.254, NAT to the host's uplink). The subnet shows exactly that definition. A port's fixed
IPs are the addresses the agent reported for the guest; an address outside the subnet (the fake
driver's 10.0.x.y, user-mode networking's 10.0.2.15) is shown with `subnet_id` null.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from mininova.api.context import RequestContext
from mininova.store import instances, networks, security_groups
from mininova.store.db import Store

PRIVATE_NAME = "private"
PRIVATE_SUBNET_NAME = "private-subnet"
PRIVATE_CIDR = "192.168.122.0/24"
PRIVATE_GATEWAY = "192.168.122.1"
PRIVATE_POOL = {"start": "192.168.122.2", "end": "192.168.122.254"}
MTU = 1500
DEFAULT_ZONE = "nova"
# Port ids: uuid5 of "<server uuid>/<mac>" in this namespace (stable, nothing stored).
_PORT_NAMESPACE = uuid.UUID("5b0f3c1e-6d0a-4c55-9a43-7d3f2a9c1e10")
_EPOCH = "1970-01-01T00:00:00Z"


def port_id(server_uuid: str, mac: str) -> str:
    return str(uuid.uuid5(_PORT_NAMESPACE, f"{server_uuid}/{mac.lower()}"))


def _stamp(value: str | None) -> str:
    """Neutron's timestamps: seconds, Z."""
    if not value:
        return _EPOCH
    return value[:19] + "Z"


async def private_network(store: Store) -> dict[str, Any]:
    network_id, subnet_id = await networks.private_ids(store)
    return {
        "id": network_id,
        "name": PRIVATE_NAME,
        "project_id": "",
        "description": "The compute hosts' libvirt network (one NIC per server).",
        "admin_state_up": True,
        "shared": True,
        "external": False,
        "mtu": MTU,
        "created_at": _EPOCH,
        "updated_at": _EPOCH,
        "subnets": [subnet_id],
        "network_type": "local",
        "private": True,
    }


async def private_subnet(store: Store) -> dict[str, Any]:
    network_id, subnet_id = await networks.private_ids(store)
    return {
        "id": subnet_id,
        "network_id": network_id,
        "name": PRIVATE_SUBNET_NAME,
        "project_id": "",
        "description": "",
        "ip_version": 4,
        "cidr": PRIVATE_CIDR,
        "gateway_ip": PRIVATE_GATEWAY,
        "enable_dhcp": True,
        "allocation_pools": [dict(PRIVATE_POOL)],
        "dns_nameservers": [],
        "host_routes": [],
        "created_at": _EPOCH,
        "updated_at": _EPOCH,
    }


def _visible_network(ctx: RequestContext, row: dict[str, Any]) -> bool:
    return (
        ctx.is_admin
        or bool(row["shared"])
        or bool(row["external"])
        or (row["project_id"] == ctx.project_id)
    )


async def visible_networks(store: Store, ctx: RequestContext) -> list[dict[str, Any]]:
    """`private` first, then the stored networks the caller may see (with their subnet ids)."""
    subnet_ids: dict[str, list[str]] = {}
    for subnet in await networks.list_subnets(store):
        subnet_ids.setdefault(subnet["network_id"], []).append(subnet["id"])
    out = [await private_network(store)]
    for row in await networks.list_networks(store):
        if _visible_network(ctx, row):
            out.append(_stored_network(row, subnet_ids.get(row["id"], [])))
    return out


def _stored_network(row: dict[str, Any], subnet_ids: list[str]) -> dict[str, Any]:
    return {
        **row,
        "admin_state_up": bool(row["admin_state_up"]),
        "shared": bool(row["shared"]),
        "external": bool(row["external"]),
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
        "subnets": subnet_ids,
        "network_type": None,
        "private": False,
    }


async def visible_subnets(store: Store, ctx: RequestContext) -> list[dict[str, Any]]:
    seen = {n["id"] for n in await visible_networks(store, ctx)}
    out = [await private_subnet(store)]
    for row in await networks.list_subnets(store):
        if row["network_id"] in seen:
            out.append(
                {
                    **row,
                    "enable_dhcp": bool(row["enable_dhcp"]),
                    "created_at": _stamp(row["created_at"]),
                    "updated_at": _stamp(row["updated_at"]),
                }
            )
    return out


def _in_subnet(address: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def _port_status(vm_state: str) -> str:
    if vm_state == "active":
        return "ACTIVE"
    if vm_state == "building":
        return "BUILD"
    return "DOWN"


async def visible_ports(store: Store, ctx: RequestContext) -> list[dict[str, Any]]:
    """One port per NIC of the servers the caller may see (admin: all); oldest server first."""
    network_id, subnet_id = await networks.private_ids(store)
    rows = await instances.list_instances(
        store, project_id=None if ctx.is_admin else ctx.project_id, descending=False
    )
    groups = await security_groups.groups_of_instances(store, [inst["uuid"] for inst in rows])
    out = []
    for inst in rows:
        mac = (inst["mac_address"] or "").lower()
        if not mac:
            continue
        fixed_ips = [
            {
                "subnet_id": subnet_id if _in_subnet(addr["addr"], PRIVATE_CIDR) else None,
                "ip_address": addr["addr"],
            }
            for addr in inst["addresses"]
            if (addr.get("mac") or mac).lower() == mac and addr.get("addr")
        ]
        out.append(
            {
                "id": port_id(inst["uuid"], mac),
                "name": "",
                "network_id": network_id,
                "project_id": inst["project_id"],
                "mac_address": mac,
                "fixed_ips": fixed_ips,
                "device_id": inst["uuid"],
                "device_owner": "compute:" + (inst["availability_zone"] or DEFAULT_ZONE),
                "status": _port_status(inst["vm_state"]),
                "host": inst["host"] or "",
                "security_groups": [group["id"] for group in groups[inst["uuid"]]],
                "created_at": _stamp(inst["created_at"]),
                "updated_at": _stamp(inst["updated_at"]),
            }
        )
    return out
