"""Server representations, exactly as each microversion defines them.

`show_view` serves GET /servers/{id} and /servers/detail; `update_view` the narrower PUT and
rebuild responses below 2.75; `brief_view` list items. Keys appear only where the requested
microversion (and the caller's role) allows them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from mininova import instance_states as st
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


def host_id(project_id: str, host: str | None) -> str:
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def addresses(inst: dict[str, Any], full: bool) -> dict[str, list[dict[str, Any]]]:
    items = []
    for addr in inst["addresses"]:
        item: dict[str, Any] = {"version": addr.get("version", 4), "addr": addr["addr"]}
        if full:
            item["OS-EXT-IPS:type"] = "fixed"
            item["OS-EXT-IPS-MAC:mac_addr"] = addr.get("mac") or inst["mac_address"]
        items.append(item)
    return {NETWORK_NAME: items} if items else {}


def _flavor(base: str, inst: dict[str, Any], mv: MV) -> dict[str, Any]:
    flavor = inst["flavor"]
    if mv >= (2, 47):
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
    if mv >= (2, 98):
        view["properties"] = image_props or {}
    return view


def _fault(inst: dict[str, Any], is_admin: bool) -> dict[str, Any] | None:
    fault = inst["fault"]
    if not fault or inst["vm_state"] not in (st.ERROR, st.DELETED):
        return None
    view = {
        "code": fault.get("code", 500),
        "created": nova_time(fault.get("created")),
        "message": fault.get("message", ""),
    }
    if is_admin and fault.get("details"):
        view["details"] = fault["details"]
    return view


def _common(
    base: str, inst: dict[str, Any], mv: MV, full_addresses: bool, image_props: dict | None
) -> dict[str, Any]:
    status = st.status(inst["vm_state"], inst["task_state"])
    view: dict[str, Any] = {
        "id": inst["uuid"],
        "name": inst["name"],
        "status": status,
        "tenant_id": inst["project_id"],
        "user_id": inst["user_id"],
        "metadata": inst["metadata"],
        "hostId": host_id(inst["project_id"], inst["host"]),
        "image": _image(base, inst, mv, image_props),
        "flavor": _flavor(base, inst, mv),
        "created": nova_time(inst["created_at"]),
        "updated": nova_time(inst["updated_at"]),
        "addresses": addresses(inst, full_addresses),
        "accessIPv4": inst["access_ip_v4"] or "",
        "accessIPv6": inst["access_ip_v6"] or "",
        "links": links(base, "servers", inst["uuid"]),
        "OS-DCF:diskConfig": "MANUAL",
    }
    if status in _PROGRESS_STATUSES:
        view["progress"] = 100 if status == "ACTIVE" else 0
    if mv >= (2, 9):
        view["locked"] = bool(inst["locked"])
    if mv >= (2, 19):
        view["description"] = inst["description"]
    if mv >= (2, 26):
        view["tags"] = []
    if mv >= (2, 63):
        view["trusted_image_certificates"] = None
    if mv >= (2, 73):
        view["locked_reason"] = inst["locked_reason"] if inst["locked"] else None
    return view


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
    view = _common(base, inst, mv, True, image_props)
    fault = _fault(inst, is_admin)
    if fault:
        view["fault"] = fault
    view["key_name"] = inst["key_name"]
    view["security_groups"] = [{"name": "default"}]
    view["OS-EXT-AZ:availability_zone"] = inst["availability_zone"] or "nova"
    view["OS-EXT-STS:task_state"] = inst["task_state"]
    view["OS-EXT-STS:vm_state"] = inst["vm_state"]
    view["OS-EXT-STS:power_state"] = inst["power_state"]
    view["OS-SRV-USG:launched_at"] = nova_usec_time(inst["launched_at"])
    view["OS-SRV-USG:terminated_at"] = nova_usec_time(inst["terminated_at"])
    view["os-extended-volumes:volumes_attached"] = []
    view["config_drive"] = inst["config_drive"]
    if is_admin:
        view["OS-EXT-SRV-ATTR:host"] = inst["host"]
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst['id']:08x}"
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst["host"]
    if mv >= (2, 3) and is_admin:
        view["OS-EXT-SRV-ATTR:reservation_id"] = inst["reservation_id"]
        view["OS-EXT-SRV-ATTR:launch_index"] = inst["launch_index"]
        view["OS-EXT-SRV-ATTR:kernel_id"] = ""
        view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
        view["OS-EXT-SRV-ATTR:root_device_name"] = "/dev/vda"
        view["OS-EXT-SRV-ATTR:user_data"] = inst["user_data"]
    if (mv >= (2, 3) and is_admin) or mv >= (2, 90):
        view["OS-EXT-SRV-ATTR:hostname"] = inst["hostname"]
    if mv >= (2, 16) and is_admin:
        view["host_status"] = host_status or ""
    if mv >= (2, 71) and not detail_list:
        view["server_groups"] = list(server_groups or [])
    if mv >= (2, 96):
        view["pinned_availability_zone"] = None
    if mv >= (2, 100):
        view["scheduler_hints"] = inst["scheduler_hints"]
    return view


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
    if mv >= (2, 75):
        return show_view(
            base, inst, mv, is_admin, host_status, image_props, server_groups=server_groups
        )
    view = _common(base, inst, mv, False, image_props)
    fault = _fault(inst, is_admin)
    if fault:
        view["fault"] = fault
    if mv >= (2, 71):
        view["server_groups"] = list(server_groups or [])
    return view


def brief_view(base: str, inst: dict[str, Any]) -> dict[str, Any]:
    return {"id": inst["uuid"], "name": inst["name"], "links": links(base, "servers", inst["uuid"])}


def ips_view(inst: dict[str, Any]) -> dict[str, Any]:
    return {"addresses": addresses(inst, False)}
