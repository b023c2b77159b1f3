"""Nova's security group APIs over the network service's records
(`mininova.network.security_groups`): the server actions `addSecurityGroup` /
`removeSecurityGroup`, `GET /servers/{id}/os-security-groups`, and the proxies
`/os-security-groups` and `/os-security-group-rules`, which answer 404 from 2.36 as Nova's.

Nova shows only a group's ingress rules, as `ip_protocol`/`from_port`/`to_port` and an
`ip_range` or a `group`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mininova import quota
from mininova.api.compute.networks import proxy_gone
from mininova.api.compute.servers import get_server
from mininova.api.context import context, services
from mininova.api.errors import ApiError, BadRequest, Forbidden, NotFound
from mininova.api.responses import json_response
from mininova.api.validation import json_body
from mininova.network import security_groups as domain
from mininova.store import security_groups as repo
from mininova.store.db import Row


def _sync(request: web.Request, hosts: list[str]) -> None:
    if hosts:
        services(request).conductor.sync_network(hosts)


def _rule_view(rule: Row, groups: dict[str, Row]) -> dict[str, Any]:
    remote = groups.get(rule["remote_group_id"] or "")
    if rule["remote_group_id"]:
        ip_range: dict[str, Any] = {}
        group = {"name": remote["name"] if remote else None, "tenant_id": rule["project_id"]}
    else:
        default = "0.0.0.0/0" if rule["ethertype"] == "IPv4" else "::/0"
        ip_range = {"cidr": rule["remote_ip_prefix"] or default}
        group = {}
    return {
        "id": rule["id"],
        "parent_group_id": rule["security_group_id"],
        "ip_protocol": rule["protocol"],
        "from_port": rule["port_range_min"] if rule["port_range_min"] is not None else -1,
        "to_port": rule["port_range_max"] if rule["port_range_max"] is not None else -1,
        "ip_range": ip_range,
        "group": group,
    }


async def _views(request: web.Request, groups: list[Row]) -> list[dict[str, Any]]:
    store = services(request).store
    rules = await repo.rules_of_groups(store, [g["id"] for g in groups])
    by_id = {g["id"]: g for g in await repo.list_groups(store, None)}
    return [
        {
            "id": g["id"],
            "name": g["name"],
            "description": g["description"],
            "tenant_id": g["project_id"],
            "rules": [
                _rule_view(r, by_id)
                for r in rules
                if r["security_group_id"] == g["id"] and r["direction"] == "ingress"
            ],
        }
        for g in groups
    ]


def _nova_error(exc: domain.GroupError, ref: str = "") -> ApiError:
    """A typed network error as Nova's neutron driver reports it."""
    if isinstance(exc, domain.TypedNotFound):
        return NotFound(f"Security group {ref} not found." if ref else str(exc))
    if exc.kind == "OverQuota":
        return Forbidden("Quota exceeded, too many security groups.")
    if exc.kind == "SecurityGroupRuleExists":
        return BadRequest(f"This rule already exists in group {ref}")
    return BadRequest(str(exc))


async def _group(request: web.Request, group_id: str) -> Row:
    try:
        return await domain.find_group(services(request).store, context(request), group_id)
    except domain.TypedNotFound:
        raise NotFound(f"Security group {group_id} not found.") from None


# ------------------------------------------------------------------ /os-security-groups


async def list_groups(request: web.Request) -> web.Response:
    proxy_gone(request)
    svc, ctx = services(request), context(request)
    rows = await domain.visible_groups(svc.store, ctx)
    every = ctx.is_admin and request.query.get("all_tenants", "0").lower() in ("1", "true")
    rows = [r for r in rows if every or r["project_id"] == ctx.project_id]
    return json_response({"security_groups": await _views(request, rows)})


async def show_group(request: web.Request) -> web.Response:
    proxy_gone(request)
    (view,) = await _views(request, [await _group(request, request.match_info["group_id"])])
    return json_response({"security_group": view})


async def create_group(request: web.Request) -> web.Response:
    proxy_gone(request)
    svc, ctx = services(request), context(request)
    body = await json_body(request)
    given = body.get("security_group") if isinstance(body, dict) else None
    if not isinstance(given, dict):
        raise BadRequest("Invalid input for field/attribute security_group.")
    name, description = given.get("name"), given.get("description", "")
    for field, value in (("name", name), ("description", description)):
        if not isinstance(value, str) or len(value) > 255 or (field == "name" and not value):
            raise BadRequest(f"Invalid input for field/attribute {field}.")
    limits = await quota.get_limits(svc.store, ctx.project_id)
    try:
        row = await domain.create_group(
            svc.store, ctx, ctx.project_id, name, description, limit=limits["security_groups"]
        )
    except domain.GroupError as exc:
        raise _nova_error(exc) from None
    (view,) = await _views(request, [row])
    return json_response({"security_group": view})


async def delete_group(request: web.Request) -> web.Response:
    proxy_gone(request)
    svc, ctx = services(request), context(request)
    group = await _group(request, request.match_info["group_id"])
    try:
        hosts = await domain.delete_group(svc.store, ctx, group["id"])
    except domain.GroupError as exc:
        raise _nova_error(exc) from None
    _sync(request, hosts)
    return web.Response(status=202)


# ------------------------------------------------------------- /os-security-group-rules


def _port(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for field/attribute {field}.") from None


async def create_rule(request: web.Request) -> web.Response:
    proxy_gone(request)
    svc, ctx = services(request), context(request)
    body = await json_body(request)
    given = body.get("security_group_rule") if isinstance(body, dict) else None
    if not isinstance(given, dict) or not given.get("parent_group_id"):
        raise BadRequest("Invalid input for field/attribute security_group_rule.")
    group = await _group(request, str(given["parent_group_id"]))
    protocol = given.get("ip_protocol")
    low, high = _port(given.get("from_port"), "from_port"), _port(given.get("to_port"), "to_port")
    if str(protocol).lower() == "icmp":  # Nova: -1 is any type / code
        low, high = (None if low == -1 else low), (None if high == -1 else high)
    cidr, remote = given.get("cidr") or None, given.get("group_id") or None
    if remote is not None:
        await _group(request, str(remote))
    if cidr is None and remote is None:
        cidr = "0.0.0.0/0"
    ethertype = "IPv6" if cidr and ":" in cidr else "IPv4"
    rule = {
        "direction": "ingress",
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": low,
        "port_range_max": high,
        "remote_ip_prefix": cidr,
        "remote_group_id": remote,
    }
    limits = await quota.get_limits(svc.store, group["project_id"])
    try:
        row, hosts = await domain.create_rule(
            svc.store, ctx, group["id"], rule, limit=limits["security_group_rules"]
        )
    except domain.GroupError as exc:
        raise _nova_error(exc, group["id"]) from None
    _sync(request, hosts)
    by_id = {g["id"]: g for g in await repo.list_groups(svc.store, None)}
    return json_response({"security_group_rule": _rule_view(row, by_id)})


async def delete_rule(request: web.Request) -> web.Response:
    proxy_gone(request)
    svc, ctx = services(request), context(request)
    rule_id = request.match_info["rule_id"]
    try:
        hosts = await domain.delete_rule(svc.store, ctx, rule_id)
    except domain.TypedNotFound:
        raise NotFound(f"Security group rule {rule_id} not found.") from None
    _sync(request, hosts)
    return web.Response(status=202)


# ----------------------------------------------------------------------- servers


async def server_groups(request: web.Request) -> web.Response:
    """GET /servers/{id}/os-security-groups: the server's groups, Nova's shape."""
    inst = await get_server(request)
    groups = (await repo.groups_of_instances(services(request).store, [inst["uuid"]]))[inst["uuid"]]
    return json_response({"security_groups": await _views(request, groups)})


def _action_name(body: Any) -> str:
    if not isinstance(body, dict) or "name" not in body:
        raise BadRequest("Missing parameter dict")
    name = body["name"]
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Security group name cannot be empty")
    return name.strip()


async def _server_group(request: web.Request, inst: Row, ref: str) -> Row:
    row = await domain.find_by_name_or_id(
        services(request).store, context(request), ref, inst["project_id"]
    )
    if row is None:
        raise NotFound(f"Security group {ref} not found.")
    return row


async def _after_change(request: web.Request, inst: Row, group_id: str) -> None:
    hosts = await domain.affected_hosts(services(request).store, [group_id])
    _sync(request, [*hosts, inst["host"] or ""])


async def add_security_group(request: web.Request, inst: Row, body: Any) -> web.Response:
    """addSecurityGroup: 202; 404 unknown group; 400 when the server is already in it."""
    name = _action_name(body)
    group = await _server_group(request, inst, name)
    store = services(request).store
    async with store.transaction() as tx:
        current = (await repo.groups_of_instances(tx, [inst["uuid"]]))[inst["uuid"]]
        if any(g["id"] == group["id"] for g in current):
            raise BadRequest(
                f"Security group {name} is already associated with the instance {inst['uuid']}"
            )
        await repo.add_member(tx, inst["uuid"], group["id"])
    await _after_change(request, inst, group["id"])
    return web.Response(status=202)


async def remove_security_group(request: web.Request, inst: Row, body: Any) -> web.Response:
    """removeSecurityGroup: 202; 404 unknown group; 400 when the server is not in it."""
    name = _action_name(body)
    group = await _server_group(request, inst, name)
    if not await repo.remove_member(services(request).store, inst["uuid"], group["id"]):
        raise BadRequest(f"Security group {name} not associated with the instance {inst['uuid']}")
    await _after_change(request, inst, group["id"])
    return web.Response(status=202)


def setup(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(prefix + "/os-security-groups", list_groups)
    router.add_post(prefix + "/os-security-groups", create_group)
    router.add_get(prefix + "/os-security-groups/{group_id}", show_group)
    router.add_delete(prefix + "/os-security-groups/{group_id}", delete_group)
    router.add_post(prefix + "/os-security-group-rules", create_rule)
    router.add_delete(prefix + "/os-security-group-rules/{rule_id}", delete_rule)
    router.add_get(prefix + "/servers/{server_id}/os-security-groups", server_groups)
