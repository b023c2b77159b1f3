"""os-networks view: the one `private` network, with the admin-only fields for admins."""

from __future__ import annotations

import uuid
from typing import Any

PRIVATE_NETWORK_NAME = "private"
PRIVATE_NETWORK_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, "mininova-private"))


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


def private_network(is_admin: bool) -> dict[str, Any]:
    """The nova-network record of the private network (None for what mininova lacks)."""
    fields = _BASIC_FIELDS + (_ADMIN_FIELDS if is_admin else ())
    view: dict[str, Any] = dict.fromkeys(fields)
    view["id"] = PRIVATE_NETWORK_ID
    view["label"] = PRIVATE_NETWORK_NAME
    return view
