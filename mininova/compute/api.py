"""Server operations (like nova.compute.api): check, record, then cast to the conductor.

The HTTP handlers parse requests and render answers; the operations live here, below HTTP
(no aiohttp) and above the conductor they cast to. They take the store (an `Executor`),
the `Caller` (the API's RequestContext fits) and, where they start work, the
`ConductorAPI`; they raise the domain errors of `mininova.errors`.

Server create checks every reference (networks, image, flavor, keypair, availability zone,
server group) first, then ONE transaction takes the project's quota lock, checks the quota and
inserts the instances with their create actions and group membership; the build is cast
after commit.
"""

from __future__ import annotations

import re
import secrets
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mininova import instance_states as st
from mininova import quota
from mininova.compute import name_filter
from mininova.consoleauth import CONSOLE_VM_STATES
from mininova.errors import Conflict, Invalid, NotFound, PermissionDenied
from mininova.hosts import is_up, seconds_up_left
from mininova.image import store_ops
from mininova.image.limits import ImageLimits
from mininova.network import security_groups as secgroups
from mininova.protocol import ProtocolError
from mininova.store import flavors, hosts, images, instances, keypairs, networks, server_groups
from mininova.store import security_groups as secgroup_store
from mininova.timeutil import now_iso

if TYPE_CHECKING:
    from mininova.conductor.rpcapi import ConductorAPI
    from mininova.config import ServeConfig
    from mininova.consoleauth.client import ConsoleAuthClient
    from mininova.store import Store
    from mininova.store.engine import Executor, Row

_CONSOLE_BUSY_TASK_STATES = ("deleting",)

# The os-instance-actions name of each state action.
_ACTION_NAMES = {
    "stop": "stop",
    "start": "start",
    "reboot": "reboot",
    "reboot_hard": "reboot",
    "pause": "pause",
    "unpause": "unpause",
    "suspend": "suspend",
    "resume": "resume",
}


class Caller(Protocol):
    """Who is asking: the API's RequestContext fits."""

    @property
    def user_id(self) -> str: ...

    @property
    def project_id(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...

    @property
    def request_id(self) -> str: ...


# ------------------------------------------------------------------------------ helpers


def sanitize_hostname(name: str) -> str:
    """Nova's rule: lower case, runs of invalid characters → '-', at most 63 characters."""
    host = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-.")
    return host[:63].rstrip("-") or "server"


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


def node_status(node: dict[str, Any], config: ServeConfig) -> str:
    """Nova's host_status of a compute node: MAINTENANCE, UP or DOWN."""
    if node["disabled"]:
        return "MAINTENANCE"
    return "UP" if is_up(node, config) else "DOWN"


def host_status(inst: Row, config: ServeConfig) -> str:
    """host_status of a server row read `with_node`: "" unplaced, UNKNOWN without a node."""
    if not inst["host"]:
        return ""
    if inst.get("node_id") is None:
        return "UNKNOWN"
    node = {
        "disabled": inst["node_disabled"],
        "connected": inst["node_connected"],
        "last_heartbeat": inst["node_last_heartbeat"],
        "forced_down": inst["node_forced_down"],
    }
    return node_status(node, config)


def host_statuses(rows: list[Row], config: ServeConfig) -> tuple[list[str], float | None]:
    """The `host_status` of each server row read `with_node`, and the seconds until the
    clock alone (a heartbeat not heard) may change one of them (None: only a write can).

    Each distinct node (its columns as read) is worked out once: a listing of many servers
    on a few hosts parses a few heartbeats, not one per server."""
    by_node: dict[tuple[Any, ...], tuple[str, float]] = {}
    statuses: list[str] = []
    soonest: float | None = None
    for row in rows:
        if not row["host"] or row.get("node_id") is None:
            statuses.append(host_status(row, config))
            continue
        node = (
            row["node_disabled"],
            row["node_connected"],
            row["node_last_heartbeat"],
            row["node_forced_down"],
        )
        found = by_node.get(node)
        if found is None:
            up_left = 0.0
            if not row["node_disabled"]:
                up_left = seconds_up_left({"connected": node[1], "last_heartbeat": node[2]}, config)
            found = by_node[node] = (host_status(row, config), up_left)
        statuses.append(found[0])
        if found[1] > 0 and (soonest is None or found[1] < soonest):
            soonest = found[1]
    return statuses, soonest


def _not_found(uuid: str) -> NotFound:
    return NotFound(f"Instance {uuid} could not be found.")


def check_locked(caller: Caller, inst: Row) -> None:
    if inst["locked"] and not caller.is_admin:
        raise Conflict(f"Instance {inst['uuid']} is locked")


_Spec = TypeVar("_Spec")


def may_start(
    caller: Caller, inst: Row, check: Callable[[str, str, str | None], _Spec], action: str
) -> _Spec:
    """`check(action, vm_state, task_state)` of a server the caller may change: its spec, else
    409 (the server is locked, or the action may not start from its state)."""
    check_locked(caller, inst)
    try:
        return check(action, inst["vm_state"], inst["task_state"])
    except st.InvalidState as exc:
        raise Conflict(str(exc)) from None


# -------------------------------------------------------------------------------- reads


async def get_server(
    db: Executor,
    caller: Caller,
    uuid: str,
    *,
    with_image_properties: bool = False,
    with_node: bool = False,
) -> Row:
    """The caller's server (any project for admin), or NotFound — never another project's.

    With `with_image_properties` / `with_node` the same single query also brings the image's
    properties and the host's compute node (see `instances.list_instances`).
    """
    if with_image_properties or with_node:
        rows = await instances.list_instances(
            db,
            uuid=uuid,
            with_image_properties=with_image_properties,
            with_node=with_node,
        )
        inst = rows[0] if rows else None
    else:
        inst = await instances.get(db, uuid)
    if inst is None or (not caller.is_admin and inst["project_id"] != caller.project_id):
        raise _not_found(uuid)
    return inst


@dataclass
class ServerQuery:
    """The server list's filters, sort and page (parsed by the API)."""

    all_tenants: bool = False
    project_id: str | None = None
    host: str | None = None
    image_ref: str | None = None
    flavor_id: str | None = None
    changed_since: str | None = None  # ISO time, already normalised
    name: str | None = None  # a regular expression, matched anywhere
    status: str | None = None
    sort_key: str = "created_at"
    descending: bool = True
    marker: str | None = None
    limit: int | None = None


SORT_KEYS = frozenset(instances.SORT_COLUMNS)


async def list_servers(
    db: Executor,
    caller: Caller,
    query: ServerQuery,
    *,
    with_image_properties: bool = False,
    with_node: bool = False,
    decoded: bool = True,
) -> list[Row]:
    """One page of the servers the caller may list: ONE query for the rows (and what the
    detail view joins in); name/status filters and the marker apply to its result."""
    if query.sort_key not in SORT_KEYS:
        raise Invalid(f"Invalid input for field/attribute sort_key. Value: {query.sort_key}.")
    pattern = name_filter.compile_pattern(query.name) if query.name else None
    if caller.is_admin and (query.all_tenants or query.project_id):
        project_id = query.project_id or None
    else:
        project_id = caller.project_id
    filtered = pattern is not None or bool(query.status) or query.marker is not None
    rows = await instances.list_instances(
        db,
        project_id=project_id,
        host=(query.host or None) if caller.is_admin else None,
        image_ref=query.image_ref or None,
        flavor_id=query.flavor_id or None,
        changed_since=query.changed_since,
        sort_key=query.sort_key,
        descending=query.descending,
        limit=None if filtered else query.limit,
        with_image_properties=with_image_properties,
        with_node=with_node,
        decoded=decoded,
    )
    if pattern is not None:
        rows = await name_filter.filter_names(pattern, rows)
    if query.status:
        wanted = query.status.upper()
        rows = [r for r in rows if st.status(r["vm_state"], r["task_state"]) == wanted]
    if query.marker is not None:
        keys = [r["uuid"] for r in rows]
        if query.marker not in keys:
            raise Invalid(f"marker [{query.marker}] not found")
        rows = rows[keys.index(query.marker) + 1 :]
    return rows[: query.limit] if query.limit is not None else rows


async def server_groups_of(db: Executor, inst: Row) -> list[str]:
    """The `server_groups` field of a server: [] or [its group's id]."""
    return await server_groups.groups_of(db, inst["uuid"])


async def security_group_names(db: Executor, uuids: list[str]) -> dict[str, list[str]]:
    """The unique names of each server's security groups (Nova shows names only)."""
    return await secgroup_store.group_names_of_instances(db, uuids)


async def list_actions(db: Executor, caller: Caller, uuid: str) -> tuple[Row, list[Row]]:
    """The server and its actions, newest first."""
    inst = await get_server(db, caller, uuid)
    return inst, await instances.list_actions(db, inst["uuid"])


async def get_action(
    db: Executor, caller: Caller, uuid: str, request_id: str
) -> tuple[Row, Row, list[Row]]:
    """The server, the action `request_id` started on it, and the action's events."""
    inst = await get_server(db, caller, uuid)
    action = await instances.get_action(db, inst["uuid"], request_id)
    if action is None:
        raise NotFound(f"Action {request_id} not found")
    return inst, action, await instances.action_events(db, action["id"])


# ------------------------------------------------------------------------------- create


@dataclass
class ServerCreate:
    """A parsed POST /servers (shapes already checked by the API's schema)."""

    name: str
    image_ref: str
    flavor_ref: str
    min_count: int = 1
    max_count: int = 1
    key_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    user_data: str | None = None
    availability_zone: str | None = None
    scheduler_hints: dict[str, Any] = field(default_factory=dict)
    host: str | None = None  # admin-only requested host (2.74)
    hypervisor_hostname: str | None = None  # admin-only requested node (2.74): its host here
    hostname: str | None = None
    description: str | None = None
    config_drive: bool = False
    # "auto", "none", None (not given) or the request's list of {"uuid"|"port"|...} entries
    networks: Any = None
    # names or ids of the request's `security_groups` (the project's `default` when empty)
    security_groups: list[str] = field(default_factory=list)


@dataclass
class CreatedServers:
    reservation_id: str
    uuids: list[str]


def flavor_document(flavor: Row, extra_specs: dict[str, str]) -> dict[str, Any]:
    """The flavor snapshot an instance (and a migration) keeps."""
    return {
        "id": flavor["id"],
        "name": flavor["name"],
        "vcpus": flavor["vcpus"],
        "ram": flavor["ram"],
        "disk": flavor["disk"],
        "ephemeral": flavor["ephemeral"],
        "swap": flavor["swap"],
        "extra_specs": extra_specs,
    }


async def usable_image(
    db: Executor, caller: Caller, image_ref: str, *, not_found: str | None = None
) -> Row:
    """The active image `image_ref` the caller may see, else Invalid (`not_found`, or the
    create message, when it is missing or hidden)."""
    image = await images.get(db, image_ref)
    visible = image is not None and (
        caller.is_admin
        or image["owner"] == caller.project_id
        or image["visibility"] in ("public", "community")
    )
    if image is None or not visible:
        raise Invalid(not_found or f"Image {image_ref} could not be found.")
    if image["status"] != "active":
        raise Invalid(f"Image {image_ref} is not active.")
    return image


_GiB = 1024**3


def check_image_fits(flavor: Mapping[str, Any], image: Row, caller: Caller) -> None:
    """Nova's flavor/image checks (create, rebuild, resize): the flavor's memory holds the
    image's min_ram and its root disk holds the image — its size, the virtual size the
    upload found in the image's header, and its min_disk. A flavor disk of 0 means "as
    large as the image", so only admins may use one (Nova's zero_disk_flavor policy)."""
    if int(flavor.get("ram") or 0) < int(image.get("min_ram") or 0):
        raise Invalid("Flavor's memory is too small for requested image.")
    dest_size = int(flavor.get("disk") or 0) * _GiB
    if not dest_size:
        if not caller.is_admin:
            raise PermissionDenied(
                "Only volume-backed servers are allowed for flavors with zero disk."
            )
        return
    image_size = max(int(image.get("size") or 0), int(image.get("virtual_size") or 0))
    if image_size > dest_size:
        raise Invalid(
            "Flavor's disk is too small for requested image. "
            f"Flavor disk is {dest_size} bytes, image is {image_size} bytes."
        )
    min_disk = int(image.get("min_disk") or 0) * _GiB
    if min_disk > dest_size:
        raise Invalid(
            "Flavor's disk is smaller than the minimum size specified in image metadata. "
            f"Flavor disk is {dest_size} bytes, minimum size is {min_disk} bytes."
        )


async def _flavor_for(db: Executor, caller: Caller, flavor_ref: str, image: Row) -> Row:
    flavor = await flavors.accessible(db, flavor_ref, caller.project_id, is_admin=caller.is_admin)
    if flavor is None:
        raise Invalid(f"Flavor {flavor_ref} could not be found.")
    if flavor["disabled"]:
        raise Invalid(f"Flavor {flavor_ref} is disabled.")
    check_image_fits(flavor, image, caller)
    return flavor


async def _group_from_hints(db: Executor, caller: Caller, hints: dict[str, Any]) -> Row | None:
    """The server group a `group` scheduler hint names: it must exist and be visible."""
    if "group" not in hints:
        return None
    group_id = hints["group"]
    if isinstance(group_id, list) and len(group_id) == 1:
        group_id = group_id[0]
    if not isinstance(group_id, str) or not group_id:
        raise Invalid(
            f"Invalid input for field/attribute group. Value: {group_id!r}. "
            "It is not a server group id"
        )
    group = await server_groups.visible(db, group_id, caller.project_id, caller.is_admin)
    if group is None:
        raise Invalid(f"Instance group {group_id} could not be found.")
    return group


async def _check_networks(store: Store, requested: Any) -> None:
    """Every server gets one NIC on `private`; a request may name that network (as OSC does
    for `--network private`), nothing else: Nova's 400s for what does not exist here."""
    if not isinstance(requested, list):
        return  # "auto", "none" or absent: one NIC on private, as always
    private_id, _ = await networks.private_ids(store)
    for entry in requested:
        if entry.get("port"):
            raise Invalid(f"Port id {entry['port']} could not be found.")
        network_id = entry.get("uuid")
        if network_id is None:
            continue
        try:
            uuidlib.UUID(str(network_id))
        except ValueError:
            raise Invalid(
                f"Bad networks format: network uuid is not in proper format ({network_id})"
            ) from None
        if network_id == private_id:
            continue
        if await networks.get_network(store, network_id) is not None:
            raise Invalid(
                f"Network {network_id} is external: servers attach only to the private network."
            )
        raise Invalid(f"Network {network_id} could not be found.")
    if len([e for e in requested if e.get("uuid")]) > 1:
        raise Invalid("A server has one NIC here: request the private network once.")
    if any(e.get("fixed_ip") for e in requested):
        raise Invalid("A fixed IP cannot be requested: the host's DHCP server assigns it.")


_FORCING_HINTS = ("force_host", "force_hosts", "force_nodes")


def _policy_denied(rule: str) -> PermissionDenied:
    return PermissionDenied(f"Policy doesn't allow os_compute_api:servers:{rule} to be performed.")


def destination(caller: Caller, req: ServerCreate) -> tuple[str | None, str | None, str | None]:
    """The requested zone, host and node (hypervisor_hostname), as Nova's policies allow:
    choosing where to build is admin-only — `availability_zone: "zone:host[:node]"` and a
    forcing scheduler hint need `servers:create:forced_host`, `host`/`hypervisor_hostname`
    (2.74) `servers:create:requested_destination`; a member gets 403 before any look-up."""
    zone, _, rest = (req.availability_zone or "").partition(":")
    az_host, _, az_node = rest.partition(":")
    if (az_host or az_node or any(req.scheduler_hints.get(k) for k in _FORCING_HINTS)) and (
        not caller.is_admin
    ):
        raise _policy_denied("create:forced_host")
    if (req.host or req.hypervisor_hostname) and not caller.is_admin:
        raise _policy_denied("create:requested_destination")
    hinted = req.scheduler_hints.get("force_host")
    host_names = {h for h in (az_host, req.host, hinted if isinstance(hinted, str) else "") if h}
    node_names = {n for n in (az_node, req.hypervisor_hostname) if n}
    if len(host_names) > 1 or len(node_names) > 1:
        raise Invalid(f"The requested hosts do not match: {sorted(host_names | node_names)}.")
    return zone or None, next(iter(host_names), None), next(iter(node_names), None)


async def _forced_host(db: Executor, host: str | None, node: str | None) -> str | None:
    """The host a build is pinned to: `host`, or the host of the compute node `node` (a
    node is one host here); 400 when they are not the same machine or the node is unknown."""
    if node is None:
        return host
    nodes = await hosts.all_nodes(db)
    found = next((n["host"] for n in nodes if n["hypervisor_hostname"] == node), None)
    if found is None:
        raise Invalid(f"Compute host {node} could not be found.")
    if host is not None and host != found:
        raise Invalid(f"Compute node {node} is not on host {host}.")
    return found


async def create_servers(
    store: Store, conductor: ConductorAPI, caller: Caller, req: ServerCreate
) -> CreatedServers:
    """Create min_count..max_count servers (as many as the quota allows) and cast their build."""
    zone, wanted_host, wanted_node = destination(caller, req)
    await _check_networks(store, req.networks)
    await quota.check_metadata_items(store, caller.project_id, len(req.metadata))
    image = await usable_image(store, caller, req.image_ref)
    flavor = await _flavor_for(store, caller, req.flavor_ref, image)
    flavor_snapshot = flavor_document(flavor, await flavors.extra_specs(store, flavor["id"]))
    key_data = None
    if req.key_name:
        key = await keypairs.get(store, caller.user_id, req.key_name)
        if key is None:
            raise Invalid("Invalid key_name provided.")
        key_data = key["public_key"]
    if zone and not await hosts.zone_exists(store, zone):
        raise Invalid(f"The requested availability zone is not available: {zone}")
    hints = dict(req.scheduler_hints)
    group = await _group_from_hints(store, caller, hints)
    firewall_groups = await secgroups.resolve_for_server(
        store, caller, req.security_groups, caller.project_id
    )
    forced_host = await _forced_host(store, wanted_host, wanted_node)
    if forced_host:
        hints["force_host"] = forced_host

    reservation_id = "r-" + secrets.token_hex(4)
    config_drive = "True" if req.config_drive else ""
    locks = {caller.project_id} | ({group["project_id"]} if group is not None else set())
    uuids: list[str] = []
    async with store.transaction() as tx:
        for project in sorted(locks):
            await tx.lock(f"quota:{project}")
        count = await quota.fit_instances(
            tx, caller.project_id, req.min_count, req.max_count, flavor["vcpus"], flavor["ram"]
        )
        if group is not None:
            await quota.check_group_members(tx, group, count)
        now = now_iso()
        for index in range(count):
            uuid = str(uuidlib.uuid4())
            name = req.name if count == 1 else f"{req.name}-{index + 1}"
            await instances.create(
                tx,
                {
                    "uuid": uuid,
                    "name": name,
                    "hostname": sanitize_hostname(req.hostname or name),
                    "project_id": caller.project_id,
                    "user_id": caller.user_id,
                    "image_ref": req.image_ref,
                    "flavor_id": str(flavor["id"]),
                    "flavor": flavor_snapshot,
                    "key_name": req.key_name,
                    "key_data": key_data,
                    "user_data": req.user_data,
                    "metadata": req.metadata,
                    "vm_state": st.BUILDING,
                    "task_state": st.SCHEDULING,
                    "power_state": st.NOSTATE,
                    "availability_zone": zone,
                    "access_ip_v4": req.access_ip_v4,
                    "access_ip_v6": req.access_ip_v6,
                    "mac_address": random_mac(),
                    "config_drive": config_drive,
                    "reservation_id": reservation_id,
                    "launch_index": index,
                    "scheduler_hints": hints,
                    "description": req.description,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            if group is not None:
                await server_groups.add_member(tx, group["id"], uuid)
            for firewall_group in firewall_groups:
                await secgroup_store.add_member(tx, uuid, firewall_group["id"])
            await instances.start_action(
                tx, uuid, "create", caller.request_id, caller.user_id, caller.project_id
            )
            uuids.append(uuid)
    conductor.build_instances(uuids)
    return CreatedServers(reservation_id, uuids)


# ------------------------------------------------------------------ update and delete


async def update_server(db: Executor, caller: Caller, inst: Row, changes: dict[str, Any]) -> None:
    """Change name, access IPs, description or hostname (sanitised) of a server."""
    changes = dict(changes)
    if "hostname" in changes:
        changes["hostname"] = sanitize_hostname(changes["hostname"])
    if changes:
        await instances.update(db, inst["uuid"], **changes)


async def delete_server(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, *, soft: bool = False
) -> None:
    """Start deleting a server (a delete already under way is left alone); with `soft`
    (reclaim_instance_interval > 0) a soft delete where the state machine says so."""
    check_locked(caller, inst)
    path = st.delete_path(inst["vm_state"], inst["task_state"], inst["host"], soft)
    if path == st.DELETE_NONE:
        return
    if path == st.DELETE_SOFT:
        from mininova.compute import soft_delete

        await soft_delete.soft_delete_server(store, conductor, caller, inst)
        return
    async with store.transaction() as tx:
        await instances.start_action(
            tx, inst["uuid"], "delete", caller.request_id, caller.user_id, caller.project_id
        )
        await instances.update(tx, inst["uuid"], task_state=st.DELETING)
    conductor.delete_instance(inst["uuid"])


# ------------------------------------------------------------------------------ metadata


async def _change_metadata(
    store: Store, caller: Caller, inst: Row, change: Any, *, check_quota: bool = True
) -> dict[str, str]:
    """Read-modify-write a server's metadata in one transaction; the new metadata.

    As Nova, the result is held to the caller's metadata_items quota (403), deletes aside."""
    check_locked(caller, inst)
    async with store.transaction() as tx:
        current = await instances.get(tx, inst["uuid"])
        if current is None:
            raise _not_found(inst["uuid"])
        meta = change(dict(current["metadata"]))
        if check_quota:
            await quota.check_metadata_items(tx, caller.project_id, len(meta))
        await instances.update(tx, inst["uuid"], metadata=meta)
    return meta


async def replace_metadata(
    store: Store, caller: Caller, inst: Row, meta: dict[str, str]
) -> dict[str, str]:
    return await _change_metadata(store, caller, inst, lambda _old: dict(meta))


async def merge_metadata(
    store: Store, caller: Caller, inst: Row, meta: dict[str, str]
) -> dict[str, str]:
    return await _change_metadata(store, caller, inst, lambda old: {**old, **meta})


async def set_metadata_item(store: Store, caller: Caller, inst: Row, key: str, value: str) -> None:
    await _change_metadata(store, caller, inst, lambda old: {**old, key: value})


async def delete_metadata_item(store: Store, caller: Caller, inst: Row, key: str) -> None:
    def without(old: dict[str, str]) -> dict[str, str]:
        if key not in old:
            raise NotFound("Metadata item was not found")
        return {k: v for k, v in old.items() if k != key}

    await _change_metadata(store, caller, inst, without, check_quota=False)


# ------------------------------------------------------------------------------- actions


async def start_task(tx: Executor, caller: Caller, inst: Row, action: str, **changes: Any) -> None:
    """Set `changes` (its task_state among them) on a server no task runs on, else 409, and
    record the instance action `action` for the caller."""
    if not await instances.update(tx, inst["uuid"], expect_task_state=None, **changes):
        raise Conflict(f"Instance {inst['uuid']} is busy; try again.")
    await instances.start_action(
        tx, inst["uuid"], action, caller.request_id, caller.user_id, caller.project_id
    )


async def run_action(
    store: Store, conductor: ConductorAPI, caller: Caller, inst: Row, action: str
) -> None:
    """A power action (stop, start, reboot, reboot_hard, pause, …): set its task state if no
    other task runs, record it, cast it."""
    spec = may_start(caller, inst, st.check_action, action)
    async with store.transaction() as tx:
        await start_task(tx, caller, inst, _ACTION_NAMES[action], task_state=spec.task_state)
    conductor.run_action(inst["uuid"], action)


async def lock(db: Executor, caller: Caller, inst: Row, reason: str | None) -> None:
    await instances.update(
        db,
        inst["uuid"],
        locked=1,
        locked_by="admin" if caller.is_admin else "owner",
        locked_reason=reason,
    )


async def unlock(db: Executor, caller: Caller, inst: Row) -> None:
    if inst["locked"] and inst["locked_by"] == "admin" and not caller.is_admin:
        raise Conflict(f"Instance {inst['uuid']} was locked by an administrator.")
    await instances.update(db, inst["uuid"], locked=0, locked_by=None, locked_reason=None)


async def reset_state(db: Executor, caller: Caller, inst: Row, state: str) -> None:
    if not caller.is_admin:
        raise PermissionDenied(
            "Policy doesn't allow os_compute_api:os-admin-actions:reset_state to be performed."
        )
    await instances.update(db, inst["uuid"], vm_state=state, task_state=None)


async def console_output(conductor: ConductorAPI, inst: Row, length: int | None) -> str:
    """The tail of the guest's serial console (None: all of it)."""
    if inst["vm_state"] == st.BUILDING or not inst["host"]:
        raise Conflict(f"Instance {inst['uuid']} is not ready yet.")
    try:
        return await conductor.console_output(inst["uuid"], length, timeout=40)
    except ProtocolError as exc:
        raise Conflict(f"Console output is unavailable: {exc.message}") from None


async def create_image(
    store: Store,
    conductor: ConductorAPI,
    caller: Caller,
    inst: Row,
    name: str,
    metadata: dict[str, str],
    image_limits: ImageLimits | None = None,
) -> str:
    """Snapshot: the image record exists (queued) when this returns; the agent uploads it.
    The image counts against the project's `image_count_total` (403 when it is reached)."""
    if inst["task_state"] is not None or inst["vm_state"] not in st.SNAPSHOT_ALLOWED:
        raise Conflict(
            f"Cannot 'createImage' instance {inst['uuid']} while it is in "
            f"vm_state {inst['vm_state']} / task_state {inst['task_state']}"
        )
    properties = {
        **metadata,
        "instance_uuid": inst["uuid"],
        "image_type": "snapshot",
        "base_image_ref": inst["image_ref"],
    }
    async with store.transaction() as tx:
        if not await instances.update(
            tx, inst["uuid"], expect_task_state=None, task_state=st.IMAGE_SNAPSHOT
        ):
            raise Conflict(f"Instance {inst['uuid']} is busy; try again.")
        image = await store_ops.create_snapshot_record(
            tx,
            image_limits,
            owner=inst["project_id"],
            name=name,
            disk_format="qcow2",
            visibility="private",
            min_disk=int(inst["flavor"].get("disk") or 0),
            properties=properties,
        )
    await instances.start_action(
        store, inst["uuid"], "createImage", caller.request_id, caller.user_id, caller.project_id
    )
    conductor.snapshot_instance(inst["uuid"], image["id"])
    return str(image["id"])


# ------------------------------------------------------------------------------ consoles


async def console_url_token(consoleauth: ConsoleAuthClient, inst: Row, console_type: str) -> str:
    """A console token for a running, placed server that is not being deleted."""
    uuid = inst["uuid"]
    if inst.get("deleted"):
        raise _not_found(uuid)
    if (
        inst.get("vm_state") not in CONSOLE_VM_STATES
        or not inst.get("host")
        or inst.get("task_state") in _CONSOLE_BUSY_TASK_STATES
    ):
        raise Conflict(f"Instance {uuid} is not ready.")
    result = await consoleauth.authorize(uuid, console_type)
    return str(result["token"])
