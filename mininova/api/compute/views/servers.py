"""Server representations, exactly as each microversion defines them.

`show_view` serves GET /servers/{id} and /servers/detail; `update_view` the narrower PUT and
rebuild responses below 2.75; `brief_view` list items; `created_view` the 202 of POST
/servers; `action_view`/`event_view` os-instance-actions. Keys appear only where the requested
microversion (and the caller's role) allows them: the field tables below (`Field(name, render,
since=, until=, when=)`) say which, in response order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mininova import instance_states as st
from mininova.api.microversions import (
    V2_3,
    V2_9,
    V2_16,
    V2_19,
    V2_26,
    V2_47,
    V2_51,
    V2_58,
    V2_62,
    V2_63,
    V2_71,
    V2_73,
    V2_75,
    V2_90,
    V2_96,
    V2_98,
    V2_100,
    Field,
    at_least,
    render_fields,
)
from mininova.store.db import Row
from mininova.timeutil import nova_time, nova_usec_time

NETWORK_NAME = "private"
# Status values for which Nova reports `progress`.
_PROGRESS_STATUSES = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}

MV = tuple[int, int]


def links(base: str, kind: str, item_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}/compute/v2.1/{kind}/{item_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/{kind}/{item_id}"},
    ]


@lru_cache(maxsize=4096)
def host_id(project_id: str, host: str | None) -> str:
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def addresses(inst: dict[str, Any], full: bool) -> dict[str, list[dict[str, Any]]]:
    """The fixed addresses, then the associated floating IPs (`inst["floating_ips"]`, rows
    of mininova.store.floating_ips the handler fetched), on the one network, as Nova shows."""
    items = []
    for addr in inst["addresses"]:
        item: dict[str, Any] = {"version": addr.get("version", 4), "addr": addr["addr"]}
        if full:
            item["OS-EXT-IPS:type"] = "fixed"
            item["OS-EXT-IPS-MAC:mac_addr"] = addr.get("mac") or inst["mac_address"]
        items.append(item)
    for fip in inst.get("floating_ips") or ():
        item = {"version": 4, "addr": fip["floating_ip_address"]}
        if full:
            item["OS-EXT-IPS:type"] = "floating"
            item["OS-EXT-IPS-MAC:mac_addr"] = inst["mac_address"]
        items.append(item)
    return {NETWORK_NAME: items} if items else {}


def _flavor(base: str, inst: dict[str, Any], mv: MV) -> dict[str, Any]:
    flavor = inst["flavor"]
    if at_least(mv, V2_47):
        return {
            "vcpus": flavor["vcpus"],
            "ram": flavor["ram"],
            "disk": flavor["disk"],
            "ephemeral": flavor.get("ephemeral", 0),
            "swap": flavor.get("swap", 0),
            "original_name": flavor["name"],
            "extra_specs": flavor.get("extra_specs", {}),
        }
    return {"id": flavor["id"], "links": [links(base, "flavors", flavor["id"])[1]]}


def _image(base: str, inst: dict[str, Any], mv: MV, image_props: dict | None) -> Any:
    if not inst["image_ref"]:
        return ""
    view: dict[str, Any] = {
        "id": inst["image_ref"],
        "links": [links(base, "images", inst["image_ref"])[1]],
    }
    if at_least(mv, V2_98):
        view["properties"] = image_props or {}
    return view


# The phrases of fault messages that name compute hosts, and what a member reads instead.
_HOST_PHRASES = (
    (re.compile(r"\bHosts rejected: .*", re.S), "There are not enough hosts available."),
    (re.compile(r"\b(on|from) its host [^\s:;,]+?(?=[.:;,]?(?:\s|$))"), r"\1 its host"),
    (re.compile(r"\bfailed on (?!its host|no host)[^\s:;,]+?:"), "failed on a host:"),
)


def member_fault_message(message: str, host: str | None) -> str:
    """A fault message as a non-admin sees it: no compute host named (Nova keeps host names
    and tracebacks for admins). The host-naming phrases are rewritten, and any other mention
    of the server's own host is replaced."""
    for pattern, replacement in _HOST_PHRASES:
        message = pattern.sub(replacement, message)
    if host:
        message = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", "its host", message)
    return message


def _fault(inst: dict[str, Any], is_admin: bool) -> dict[str, Any] | None:
    """Nova's fault of an ERROR (or deleted) server; `details` for admins only, and a
    member's message names no host."""
    fault = inst["fault"]
    if not fault or inst["vm_state"] not in (st.ERROR, st.DELETED):
        return None
    message = fault.get("message", "")
    if not is_admin:
        message = member_fault_message(message, inst.get("host"))
    view = {
        "code": fault.get("code", 500),
        "created": nova_time(fault.get("created")),
        "message": message,
    }
    if is_admin and fault.get("details"):
        view["details"] = fault["details"]
    return view


@dataclass(slots=True)
class ServerView:
    """What the field tables render one server from (`status` and `fault` worked out once)."""

    base: str
    inst: dict[str, Any]
    mv: MV
    is_admin: bool
    full_addresses: bool
    host_status: str | None = None
    image_props: dict | None = None
    detail_list: bool = False
    server_groups: list[str] | None = None
    status: str = field(init=False)
    fault: dict[str, Any] | None = field(init=False)

    def __post_init__(self) -> None:
        self.status = st.status(self.inst["vm_state"], self.inst["task_state"])
        self.fault = _fault(self.inst, self.is_admin)


def _admin(s: ServerView) -> bool:
    return s.is_admin


# The keys of every server view, in response order (show, detail, update, rebuild).
COMMON_FIELDS: tuple[Field[ServerView], ...] = (
    Field("id", lambda s: s.inst["uuid"]),
    Field("name", lambda s: s.inst["name"]),
    Field("status", lambda s: s.status),
    Field("tenant_id", lambda s: s.inst["project_id"]),
    Field("user_id", lambda s: s.inst["user_id"]),
    Field("metadata", lambda s: s.inst["metadata"]),
    Field("hostId", lambda s: host_id(s.inst["project_id"], s.inst["host"])),
    Field("image", lambda s: _image(s.base, s.inst, s.mv, s.image_props)),
    Field("flavor", lambda s: _flavor(s.base, s.inst, s.mv)),
    Field("created", lambda s: nova_time(s.inst["created_at"])),
    Field("updated", lambda s: nova_time(s.inst["updated_at"])),
    Field("addresses", lambda s: addresses(s.inst, s.full_addresses)),
    Field("accessIPv4", lambda s: s.inst["access_ip_v4"] or ""),
    Field("accessIPv6", lambda s: s.inst["access_ip_v6"] or ""),
    Field("links", lambda s: links(s.base, "servers", s.inst["uuid"])),
    Field("OS-DCF:diskConfig", lambda s: "MANUAL"),
    Field(
        "progress",
        lambda s: 100 if s.status == "ACTIVE" else 0,
        when=lambda s: s.status in _PROGRESS_STATUSES,
    ),
    Field("locked", lambda s: bool(s.inst["locked"]), since=V2_9),
    Field("description", lambda s: s.inst["description"], since=V2_19),
    Field("tags", lambda s: [], since=V2_26),
    Field("trusted_image_certificates", lambda s: None, since=V2_63),
    Field(
        "locked_reason",
        lambda s: s.inst["locked_reason"] if s.inst["locked"] else None,
        since=V2_73,
    ),
    Field("fault", lambda s: s.fault, when=lambda s: s.fault is not None),
)

# GET /servers/{id} and /servers/detail (and update/rebuild from 2.75).
SHOW_FIELDS: tuple[Field[ServerView], ...] = COMMON_FIELDS + (
    Field("key_name", lambda s: s.inst["key_name"]),
    Field(
        "security_groups",
        lambda s: [{"name": name} for name in s.inst.get("security_group_names") or ()],
    ),
    Field("OS-EXT-AZ:availability_zone", lambda s: s.inst["availability_zone"] or "nova"),
    Field("OS-EXT-STS:task_state", lambda s: s.inst["task_state"]),
    Field("OS-EXT-STS:vm_state", lambda s: s.inst["vm_state"]),
    Field("OS-EXT-STS:power_state", lambda s: s.inst["power_state"]),
    Field("OS-SRV-USG:launched_at", lambda s: nova_usec_time(s.inst["launched_at"])),
    Field("OS-SRV-USG:terminated_at", lambda s: nova_usec_time(s.inst["terminated_at"])),
    Field("os-extended-volumes:volumes_attached", lambda s: []),
    Field("config_drive", lambda s: s.inst["config_drive"]),
    Field("OS-EXT-SRV-ATTR:host", lambda s: s.inst["host"], when=_admin),
    Field("OS-EXT-SRV-ATTR:instance_name", lambda s: f"instance-{s.inst['id']:08x}", when=_admin),
    Field("OS-EXT-SRV-ATTR:hypervisor_hostname", lambda s: s.inst["host"], when=_admin),
    Field(
        "OS-EXT-SRV-ATTR:reservation_id",
        lambda s: s.inst["reservation_id"],
        since=V2_3,
        when=_admin,
    ),
    Field(
        "OS-EXT-SRV-ATTR:launch_index", lambda s: s.inst["launch_index"], since=V2_3, when=_admin
    ),
    Field("OS-EXT-SRV-ATTR:kernel_id", lambda s: "", since=V2_3, when=_admin),
    Field("OS-EXT-SRV-ATTR:ramdisk_id", lambda s: "", since=V2_3, when=_admin),
    Field("OS-EXT-SRV-ATTR:root_device_name", lambda s: "/dev/vda", since=V2_3, when=_admin),
    Field("OS-EXT-SRV-ATTR:user_data", lambda s: s.inst["user_data"], since=V2_3, when=_admin),
    Field(
        "OS-EXT-SRV-ATTR:hostname",
        lambda s: s.inst["hostname"],
        since=V2_3,
        until=V2_90,
        when=_admin,
    ),
    Field("OS-EXT-SRV-ATTR:hostname", lambda s: s.inst["hostname"], since=V2_90),
    Field("host_status", lambda s: s.host_status or "", since=V2_16, when=_admin),
    Field(
        "server_groups",
        lambda s: list(s.server_groups or []),
        since=V2_71,
        when=lambda s: not s.detail_list,
    ),
    Field("pinned_availability_zone", lambda s: None, since=V2_96),
    Field("scheduler_hints", lambda s: s.inst["scheduler_hints"], since=V2_100),
)

# PUT /servers/{id} and rebuild below 2.75 (from 2.75 they answer SHOW_FIELDS).
UPDATE_FIELDS: tuple[Field[ServerView], ...] = COMMON_FIELDS + (
    Field("server_groups", lambda s: list(s.server_groups or []), since=V2_71),
)


def show_view(
    base: str,
    inst: dict[str, Any],
    mv: MV,
    is_admin: bool,
    host_status: str | None = None,
    image_props: dict | None = None,
    detail_list: bool = False,
    server_groups: list[str] | None = None,
) -> dict[str, Any]:
    server = ServerView(
        base, inst, mv, is_admin, True, host_status, image_props, detail_list, server_groups
    )
    return render_fields(SHOW_FIELDS, mv, server)


def update_view(
    base: str,
    inst: dict[str, Any],
    mv: MV,
    is_admin: bool,
    host_status: str | None = None,
    image_props: dict | None = None,
    server_groups: list[str] | None = None,
) -> dict[str, Any]:
    """PUT /servers/{id} (and rebuild): narrower below 2.75, the full show view from 2.75."""
    if at_least(mv, V2_75):
        return show_view(
            base, inst, mv, is_admin, host_status, image_props, server_groups=server_groups
        )
    server = ServerView(
        base, inst, mv, is_admin, False, host_status, image_props, server_groups=server_groups
    )
    return render_fields(UPDATE_FIELDS, mv, server)


def brief_view(base: str, inst: dict[str, Any]) -> dict[str, Any]:
    return {"id": inst["uuid"], "name": inst["name"], "links": links(base, "servers", inst["uuid"])}


def ips_view(inst: dict[str, Any]) -> dict[str, Any]:
    return {"addresses": addresses(inst, False)}


def created_view(
    base: str, uuid: str, disk_config: str, admin_pass: str, security_groups: list[str]
) -> dict[str, Any]:
    """The `server` of POST /servers' 202 (`security_groups`: its groups' unique names)."""
    return {
        "id": uuid,
        "links": links(base, "servers", uuid),
        "OS-DCF:diskConfig": disk_config,
        "security_groups": [{"name": name} for name in security_groups],
        "adminPass": admin_pass,
    }


def action_view(row: Row, mv: MV) -> dict[str, Any]:
    """One os-instance-actions entry (without events)."""
    view = {
        "action": row["action"],
        "instance_uuid": row["instance_uuid"],
        "request_id": row["request_id"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "start_time": nova_usec_time(row["start_time"]),
        "message": row["message"],
    }
    if at_least(mv, V2_58):
        view["updated_at"] = nova_usec_time(row["finish_time"] or row["start_time"])
    return view


def event_view(event: Row, project_id: str, mv: MV, is_admin: bool) -> dict[str, Any]:
    item = {
        "event": event["event"],
        "start_time": nova_usec_time(event["start_time"]),
        "finish_time": nova_usec_time(event["finish_time"]),
        "result": event["result"],
    }
    if is_admin:
        item["traceback"] = event["traceback"]
    if at_least(mv, V2_62):
        item["hostId"] = host_id(project_id, event["host"])
        if is_admin:
            item["host"] = event["host"] or ""
    return item


def action_detail_view(
    action: Row, events: list[Row], project_id: str, mv: MV, is_admin: bool
) -> dict[str, Any]:
    """GET os-instance-actions/{request_id}: events for admins, and for everyone from 2.51."""
    view = action_view(action, mv)
    if is_admin or at_least(mv, V2_51):
        view["events"] = [event_view(ev, project_id, mv, is_admin) for ev in events]
    return view
