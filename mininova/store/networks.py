"""Networks and subnets made through the network API, and the stored ids of `private`.

`private` (the hosts' libvirt network) has no row: only its network and subnet ids are stored,
in `settings` (migration 0004 writes them; `private_ids` writes them for a database that lacks
them). Subnet rows come back decoded (`allocation_pools`, `dns_nameservers`, `host_routes`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, select

from mininova.store import settings
from mininova.store.db import dumps, loads
from mininova.store.engine import prepared
from mininova.store.schema import networks, subnets

if TYPE_CHECKING:
    from mininova.store.engine import Executor, Row

PRIVATE_NETWORK_KEY = "network.private.id"
PRIVATE_SUBNET_KEY = "network.private.subnet_id"
# The id os-networks always showed for `private`; migration 0004 stores the same one.
LEGACY_PRIVATE_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "mininova-private"))

_JSON = ("allocation_pools", "dns_nameservers", "host_routes")

_LIST_NETWORKS = prepared(select(networks).order_by(networks.c.created_at, networks.c.id))
_GET_NETWORK = prepared(select(networks).where(networks.c.id == bindparam("id")))
_DELETE_NETWORK = prepared(delete(networks).where(networks.c.id == bindparam("id")))
_LIST_SUBNETS = prepared(select(subnets).order_by(subnets.c.created_at, subnets.c.id))
_GET_SUBNET = prepared(select(subnets).where(subnets.c.id == bindparam("id")))
_DELETE_SUBNET = prepared(delete(subnets).where(subnets.c.id == bindparam("id")))
_DELETE_SUBNETS_OF = prepared(delete(subnets).where(subnets.c.network_id == bindparam("id")))


async def private_ids(db: Executor) -> tuple[str, str]:
    """(network id, subnet id) of `private`, stored once (written here if missing)."""
    network_id = await settings.get(db, PRIVATE_NETWORK_KEY)
    subnet_id = await settings.get(db, PRIVATE_SUBNET_KEY)
    if network_id is None:
        network_id = LEGACY_PRIVATE_ID
        await settings.put(db, PRIVATE_NETWORK_KEY, network_id)
    if subnet_id is None:
        subnet_id = str(uuid.uuid4())
        await settings.put(db, PRIVATE_SUBNET_KEY, subnet_id)
    return network_id, subnet_id


def _subnet(row: Row | None) -> Row | None:
    if row is None:
        return None
    out = dict(row)
    for key in _JSON:
        out[key] = loads(out[key], [])
    return out


async def list_networks(db: Executor) -> list[Row]:
    """Every stored network, oldest first."""
    return await db.all(_LIST_NETWORKS)


async def get_network(db: Executor, network_id: str) -> Row | None:
    return await db.one(_GET_NETWORK, {"id": network_id})


async def insert_network(db: Executor, values: Mapping[str, Any]) -> None:
    await db.insert(networks, dict(values))


async def delete_network(db: Executor, network_id: str) -> bool:
    """Delete a network and its subnets; False when there was none."""
    await db.execute(_DELETE_SUBNETS_OF, {"id": network_id})
    return await db.execute(_DELETE_NETWORK, {"id": network_id}) > 0


async def list_subnets(db: Executor) -> list[Row]:
    """Every stored subnet (decoded), oldest first."""
    return [_subnet(row) for row in await db.all(_LIST_SUBNETS)]  # type: ignore[misc]


async def get_subnet(db: Executor, subnet_id: str) -> Row | None:
    return _subnet(await db.one(_GET_SUBNET, {"id": subnet_id}))


async def insert_subnet(db: Executor, values: Mapping[str, Any]) -> None:
    row = dict(values)
    for key in _JSON:
        row[key] = dumps(row.get(key) or [])
    await db.insert(subnets, row)


async def delete_subnet(db: Executor, subnet_id: str) -> bool:
    return await db.execute(_DELETE_SUBNET, {"id": subnet_id}) > 0
