"""Floating IPs in-process: allocation from an external subnet's pools, association with a
server's port, Nova's `addresses`, quota, visibility, and what a deleted server leaves."""

from __future__ import annotations

from typing import Any

import pytest

from mininova import quota
from mininova.controller import Controller
from mininova.store import floating_ips
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient
from tests.kit.wait import wait_for
from tests.network.test_network_api import SERVERS, N, _boot, _private, host, neutron_error

__all__ = ["host"]

FIPS = N + "/floatingips"
FIP_KEYS = {
    "id",
    "floating_ip_address",
    "floating_network_id",
    "router_id",
    "port_id",
    "fixed_ip_address",
    "status",
    "project_id",
    "tenant_id",
    "description",
    "qos_policy_id",
    "port_details",
    "port_forwardings",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
}


async def _public(
    api: ApiClient, cidr: str = "172.24.4.0/24", name: str = "public", **subnet: Any
) -> tuple[dict, dict]:
    status, body, _ = await api.post(
        N + "/networks", json={"network": {"name": name, "router:external": True}}
    )
    assert status == 201, body
    network = body["network"]
    status, body, _ = await api.post(
        N + "/subnets",
        json={"subnet": {"network_id": network["id"], "cidr": cidr, "ip_version": 4, **subnet}},
    )
    assert status == 201, body
    return network, body["subnet"]


async def _create(client: ApiClient, network_id: str, **extra: Any) -> tuple[int, dict]:
    status, body, _ = await client.post(
        FIPS, json={"floatingip": {"floating_network_id": network_id, **extra}}
    )
    return status, body


async def _update(client: ApiClient, fip_id: str, **changes: Any) -> tuple[int, dict]:
    status, body, _ = await client.put(f"{FIPS}/{fip_id}", json={"floatingip": changes})
    return status, body


async def test_allocate_list_show_delete(api: ApiClient, member_api: ApiClient) -> None:
    public, subnet = await _public(api)
    status, body = await _create(member_api, public["id"])
    assert status == 201, body
    fip = body["floatingip"]
    assert set(fip) == FIP_KEYS
    # The first address of the default pool: the gateway (.1) is never handed out.
    assert fip["floating_ip_address"] == "172.24.4.2"
    assert fip["floating_network_id"] == public["id"]
    assert fip["status"] == "DOWN" and fip["port_id"] is None and fip["port_details"] is None
    assert fip["fixed_ip_address"] is None and fip["router_id"] is None
    assert fip["project_id"] == fip["tenant_id"] == member_api.project_id
    assert fip["revision_number"] == 0 and fip["tags"] == []
    assert fip["created_at"].endswith("Z") and len(fip["created_at"]) == 20

    status, body = await _create(
        member_api, public["id"], floating_ip_address="172.24.4.50", description="web"
    )
    assert status == 201, body
    chosen = body["floatingip"]
    assert chosen["floating_ip_address"] == "172.24.4.50" and chosen["description"] == "web"
    status, body = await _create(member_api, public["id"], floating_ip_address="172.24.4.50")
    assert status == 409
    message = neutron_error(body, "IpAddressAlreadyAllocated")
    assert message == f"IP address 172.24.4.50 already allocated in subnet {subnet['id']}"
    status, body = await _create(member_api, public["id"], floating_ip_address="172.24.4.1")
    assert status == 400
    neutron_error(body, "InvalidIpForSubnet")
    status, body = await _create(member_api, public["id"], floating_ip_address="10.9.9.9")
    assert status == 400
    neutron_error(body, "InvalidIpForNetwork")
    status, body = await _create(member_api, public["id"], floating_ip_address="nope")
    assert status == 400
    assert "is not a valid IP address" in neutron_error(body)
    # The next automatic allocation is the lowest free address of the pool.
    status, body = await _create(member_api, public["id"])
    assert body["floatingip"]["floating_ip_address"] == "172.24.4.3"
    third = body["floatingip"]

    status, body, _ = await member_api.get(FIPS)
    assert status == 200
    assert [f["id"] for f in body["floatingips"]] == [fip["id"], chosen["id"], third["id"]]
    status, shown, _ = await member_api.get(f"{FIPS}/{chosen['id']}")
    assert status == 200 and shown["floatingip"] == chosen
    _, body, _ = await member_api.get(f"{FIPS}?floating_ip_address=172.24.4.50&fields=id")
    assert body["floatingips"] == [{"id": chosen["id"]}]
    _, body, _ = await member_api.get(f"{FIPS}?status=DOWN&sort_key=floating_ip_address")
    assert [f["floating_ip_address"] for f in body["floatingips"]] == [
        "172.24.4.2",
        "172.24.4.3",
        "172.24.4.50",
    ]
    _, body, _ = await member_api.get(f"{FIPS}?limit=2")
    assert len(body["floatingips"]) == 2 and "floatingips_links" in body
    _, body, _ = await member_api.get(f"{FIPS}?status=ACTIVE")
    assert body["floatingips"] == []
    status, body, _ = await member_api.get(f"{FIPS}?bogus=1")
    assert status == 400

    # Another project's floating IP does not exist for the member; the admin sees all.
    status, body = await _create(api, public["id"])
    assert status == 201
    admins = body["floatingip"]
    for method in (member_api.get, member_api.delete):
        status, body, _ = await method(f"{FIPS}/{admins['id']}")
        assert status == 404
        assert neutron_error(body, "FloatingIPNotFound") == (
            f"Floating IP {admins['id']} could not be found"
        )
    status, body = await _update(member_api, admins["id"], description="mine")
    assert status == 404
    _, body, _ = await member_api.get(FIPS)
    assert admins["id"] not in {f["id"] for f in body["floatingips"]}
    _, body, _ = await api.get(FIPS)
    assert len(body["floatingips"]) == 4
    _, body, _ = await api.get(f"{FIPS}?project_id={member_api.project_id}")
    assert len(body["floatingips"]) == 3

    status, body = await _update(member_api, chosen["id"], description="db")
    assert status == 200
    assert body["floatingip"]["description"] == "db"
    assert body["floatingip"]["revision_number"] == 1

    # The network is in use while it has floating IPs.
    status, body, _ = await api.delete(f"{N}/networks/{public['id']}")
    assert status == 409
    neutron_error(body, "NetworkInUse")
    for item in (fip, chosen, third):
        status, _, _ = await member_api.delete(f"{FIPS}/{item['id']}")
        assert status == 204
    status, body, _ = await member_api.get(f"{FIPS}/{fip['id']}")
    assert status == 404
    status, _, _ = await api.delete(f"{FIPS}/{admins['id']}")
    assert status == 204
    status, _, _ = await api.delete(f"{N}/networks/{public['id']}")
    assert status == 204


async def test_floating_network_must_be_external(api: ApiClient, member_api: ApiClient) -> None:
    public, subnet = await _public(api)
    other, other_subnet = await _public(api, "172.24.9.0/24", "public2")
    private = await _private(member_api)
    status, body = await _create(member_api, private["id"])
    assert status == 400
    assert neutron_error(body, "BadRequest") == (
        f"Bad floatingip request: Network {private['id']} is not a valid external network."
    )
    missing = "9b2d9c3e-0000-4000-8000-000000000001"
    status, body = await _create(member_api, missing)
    assert status == 404
    neutron_error(body, "NetworkNotFound")
    status, body = await _create(member_api, public["id"], subnet_id=missing)
    assert status == 404
    neutron_error(body, "SubnetNotFound")
    status, body = await _create(member_api, public["id"], subnet_id=other_subnet["id"])
    assert status == 400
    neutron_error(body, "BadRequest")
    status, body = await _create(member_api, other["id"], subnet_id=other_subnet["id"])
    assert status == 201 and body["floatingip"]["floating_ip_address"] == "172.24.9.2"
    status, body = await _create(member_api, public["id"], color="red")
    assert status == 400
    assert neutron_error(body) == "Unrecognized attribute(s) 'color'"
    status, body, _ = await member_api.post(FIPS, json={"floatingip": {}})
    assert status == 400
    status, body = await _create(member_api, public["id"], fixed_ip_address="10.0.0.5")
    assert status == 400
    assert "without a port_id" in neutron_error(body, "BadRequest")
    status, body = await _create(member_api, public["id"], project_id=api.project_id)
    assert status == 400
    # A network without subnets has nothing to hand out.
    bare_status, bare, _ = await api.post(
        N + "/networks", json={"network": {"name": "bare", "router:external": True}}
    )
    assert bare_status == 201
    status, body = await _create(member_api, bare["network"]["id"])
    assert status == 400
    neutron_error(body, "ExternalIpAddressExhausted")


async def test_pool_exhaustion_and_reuse(api: ApiClient, member_api: ApiClient) -> None:
    public, _ = await _public(
        api, "172.24.6.0/29", allocation_pools=[{"start": "172.24.6.2", "end": "172.24.6.3"}]
    )
    addresses = []
    for _ in range(2):
        status, body = await _create(member_api, public["id"])
        assert status == 201, body
        addresses.append(body["floatingip"])
    assert [f["floating_ip_address"] for f in addresses] == ["172.24.6.2", "172.24.6.3"]
    status, body = await _create(member_api, public["id"])
    assert status == 400
    assert neutron_error(body, "ExternalIpAddressExhausted") == (
        f"Unable to find any IP address on external network {public['id']}."
    )
    # Outside the pool (but in the CIDR) is refused too.
    status, body = await _create(member_api, public["id"], floating_ip_address="172.24.6.5")
    assert status == 400
    neutron_error(body, "InvalidIpForSubnet")
    status, _, _ = await member_api.delete(f"{FIPS}/{addresses[0]['id']}")
    assert status == 204
    status, body = await _create(member_api, public["id"])
    assert status == 201 and body["floatingip"]["floating_ip_address"] == "172.24.6.2"


async def test_quota(api: ApiClient, member_api: ApiClient, controller: Controller) -> None:
    public, _ = await _public(api)
    pid = member_api.project_id
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}")
    assert body["quota"]["floatingip"] == quota.DEFAULTS["floating_ips"]
    await quota.set_limits(controller.store, pid, {"floating_ips": 2})
    for _ in range(2):
        status, body = await _create(member_api, public["id"])
        assert status == 201, body
    status, body = await _create(member_api, public["id"])
    assert status == 409
    assert neutron_error(body, "OverQuota") == "Quota exceeded for resources: ['floatingip']."
    _, body, _ = await member_api.get(FIPS)
    assert len(body["floatingips"]) == 2
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}")
    assert body["quota"]["floatingip"] == 2
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}/default")
    assert body["quota"]["floatingip"] == quota.DEFAULTS["floating_ips"]
    _, body, _ = await member_api.get(f"{N}/quotas/{pid}/details.json")
    assert body["quota"]["floatingip"] == {"limit": 2, "used": 2, "reserved": 0}
    # Another project's quota is its own.
    status, body = await _create(api, public["id"])
    assert status == 201


async def _server_port(client: ApiClient, name: str) -> tuple[dict, dict]:
    private = await _private(client)
    status, body = await _boot(client, name, [{"uuid": private["id"]}])
    assert status == 202, body
    server = await client.wait_server(body["server"]["id"], "ACTIVE")
    _, body, _ = await client.get(f"{N}/ports?device_id={server['id']}")
    (port,) = body["ports"]
    return server, port


async def test_associate_disassociate_and_server_addresses(
    api: ApiClient,
    member_api: ApiClient,
    controller: Controller,
    host: FakeDriver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced: list[list[str]] = []
    monkeypatch.setattr(controller.services.conductor, "sync_network", synced.append)
    public, _ = await _public(api)
    server, port = await _server_port(member_api, "vm1")
    (fixed,) = [ip["ip_address"] for ip in port["fixed_ips"]]
    mac = port["mac_address"]
    synced.clear()  # what booting the server pushed is not this test's concern

    status, body = await _create(member_api, public["id"], port_id=port["id"])
    assert status == 201, body
    fip = body["floatingip"]
    assert fip["status"] == "ACTIVE" and fip["port_id"] == port["id"]
    assert fip["fixed_ip_address"] == fixed
    assert fip["port_details"] == {
        "name": "",
        "network_id": port["network_id"],
        "mac_address": mac,
        "admin_state_up": True,
        "status": "ACTIVE",
        "device_id": server["id"],
        "device_owner": "compute:nova",
    }
    assert synced == [["node1"]]

    # Nova shows it on the server's network, after the fixed address.
    floating = {
        "version": 4,
        "addr": fip["floating_ip_address"],
        "OS-EXT-IPS:type": "floating",
        "OS-EXT-IPS-MAC:mac_addr": mac,
    }
    fixed_entry = {
        "version": 4,
        "addr": fixed,
        "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": mac,
    }
    _, body, _ = await member_api.get(f"{SERVERS}/{server['id']}", version="2.100")
    assert body["server"]["addresses"] == {"private": [fixed_entry, floating]}
    _, body, _ = await member_api.get(f"{SERVERS}/detail")
    (listed,) = body["servers"]
    assert listed["addresses"] == {"private": [fixed_entry, floating]}
    _, body, _ = await member_api.get(f"{SERVERS}/{server['id']}/ips")
    assert body["addresses"] == {
        "private": [{"version": 4, "addr": fixed}, {"version": 4, "addr": floating["addr"]}]
    }
    _, body, _ = await member_api.get(f"{SERVERS}/{server['id']}/ips/private")
    assert body["private"][1] == {"version": 4, "addr": floating["addr"]}
    # The port itself is unchanged, and still found by its server.
    _, body, _ = await member_api.get(f"{N}/ports?device_id={server['id']}")
    assert body["ports"] == [port]

    # One floating IP per fixed IP and external network.
    status, body = await _create(member_api, public["id"])
    second = body["floatingip"]
    status, body = await _update(member_api, second["id"], port_id=port["id"])
    assert status == 409
    message = neutron_error(body, "FloatingIPPortAlreadyAssociated")
    assert second["floating_ip_address"] in message and fixed in message
    status, body = await _create(member_api, public["id"], port_id=port["id"])
    assert status == 409
    neutron_error(body, "FloatingIPPortAlreadyAssociated")
    status, body = await _update(
        member_api, second["id"], port_id=port["id"], fixed_ip_address="10.255.0.1"
    )
    assert status == 400
    assert "does not have fixed ip 10.255.0.1" in neutron_error(body, "BadRequest")
    missing = "9b2d9c3e-0000-4000-8000-000000000001"
    status, body = await _update(member_api, second["id"], port_id=missing)
    assert status == 404
    assert neutron_error(body, "PortNotFound") == f"Port {missing} could not be found."
    _, body = await _update(member_api, fip["id"], port_id=port["id"])  # already there
    assert body["floatingip"]["revision_number"] == 0
    assert synced == [["node1"]]

    # Disassociate: DOWN, no port; the server shows only its fixed address.
    status, body = await _update(member_api, fip["id"], port_id=None)
    assert status == 200, body
    down = body["floatingip"]
    assert down["status"] == "DOWN" and down["port_id"] is None
    assert down["fixed_ip_address"] is None and down["port_details"] is None
    assert down["revision_number"] == 1
    assert synced[-1] == ["node1"]
    _, body, _ = await member_api.get(f"{SERVERS}/{server['id']}", version="2.100")
    assert body["server"]["addresses"] == {"private": [fixed_entry]}

    # Now the other one may take the port; the admin sees its port details too.
    status, body = await _update(
        member_api, second["id"], port_id=port["id"], fixed_ip_address=fixed
    )
    assert status == 200 and body["floatingip"]["status"] == "ACTIVE"
    _, body, _ = await api.get(f"{FIPS}/{second['id']}")
    assert body["floatingip"]["port_details"]["device_id"] == server["id"]
    count = len(synced)
    status, _, _ = await member_api.delete(f"{FIPS}/{second['id']}")
    assert status == 204
    assert synced[count:] == [["node1"]]
    _, body, _ = await member_api.get(f"{SERVERS}/{server['id']}", version="2.100")
    assert body["server"]["addresses"] == {"private": [fixed_entry]}

    # An admin's server's port is not the member's to use.
    _, admin_port = await _server_port(api, "adminvm")
    status, body = await _update(member_api, fip["id"], port_id=admin_port["id"])
    assert status == 404
    neutron_error(body, "PortNotFound")


async def test_server_delete_disassociates(
    api: ApiClient, member_api: ApiClient, host: FakeDriver
) -> None:
    public, _ = await _public(api)
    server, port = await _server_port(member_api, "vm1")
    status, body = await _create(member_api, public["id"], port_id=port["id"])
    assert status == 201, body
    fip = body["floatingip"]
    status, _, _ = await member_api.delete(f"{SERVERS}/{server['id']}")
    assert status == 204

    async def released() -> dict | None:
        _, body, _ = await member_api.get(f"{FIPS}/{fip['id']}")
        return body["floatingip"] if body["floatingip"]["port_id"] is None else None

    kept = await wait_for(released, 10, 0.05, "the floating IP to leave the deleted server")
    assert kept["status"] == "DOWN" and kept["fixed_ip_address"] is None
    assert kept["floating_ip_address"] == fip["floating_ip_address"]


async def test_store_reads_for_servers(
    api: ApiClient, member_api: ApiClient, controller: Controller, host: FakeDriver
) -> None:
    public, _ = await _public(api)
    server, port = await _server_port(member_api, "vm1")
    (fixed,) = [ip["ip_address"] for ip in port["fixed_ips"]]
    status, body = await _create(member_api, public["id"], port_id=port["id"])
    assert status == 201, body
    fip = body["floatingip"]
    status, body = await _create(member_api, public["id"])  # not associated: never listed
    assert status == 201
    store = controller.store

    found = await floating_ips.floating_ips_of_instances(store, [server["id"], "nope"])
    assert [r["id"] for r in found[server["id"]]] == [fip["id"]] and found["nope"] == []
    assert await floating_ips.floating_ips_of_instances(store, []) == {}

    (changed,) = await floating_ips.disassociate_instance(store, server["id"])
    assert changed["id"] == fip["id"] and changed["fixed_ip_address"] == fixed
    assert await floating_ips.disassociate_instance(store, server["id"]) == []
    _, body, _ = await member_api.get(f"{FIPS}/{fip['id']}")
    assert body["floatingip"]["status"] == "DOWN" and body["floatingip"]["port_id"] is None
    assert body["floatingip"]["revision_number"] == 1
    assert await floating_ips.floating_ips_of_instances(store, [server["id"]]) == {server["id"]: []}


async def test_nova_floating_ip_pools_are_the_external_networks(
    api: ApiClient, member_api: ApiClient
) -> None:
    pools = "/compute/v2.1/os-floating-ip-pools"
    _, body, _ = await member_api.get(pools)
    assert body == {"floating_ip_pools": []}
    await _public(api)
    await _public(api, "172.24.9.0/24", "public2")
    _, body, _ = await member_api.get(pools)
    assert body == {"floating_ip_pools": [{"name": "public"}, {"name": "public2"}]}
    status, _, _ = await member_api.get(pools, version="2.36")
    assert status == 404


async def test_subnet_with_floating_ips_cannot_be_deleted(api: ApiClient) -> None:
    """Neutron's 409 SubnetInUse while a floating IP came from the subnet; 204 after."""
    public, subnet = await _public(api, "10.77.0.0/24", "pub-inuse")
    status, body = await _create(api, public["id"])
    assert status == 201, body
    # Nova's limits (below 2.36) count it as well.
    _, limits, _ = await api.get("/compute/v2.1/limits", version="2.1")
    assert limits["limits"]["absolute"]["totalFloatingIpsUsed"] == 1, limits
    status, fault, _ = await api.delete(f"{N}/subnets/{subnet['id']}")
    assert status == 409, fault
    neutron_error(fault, "SubnetInUse")
    status, _, _ = await api.delete(f"{FIPS}/{body['floatingip']['id']}")
    assert status == 204
    status, _, _ = await api.delete(f"{N}/subnets/{subnet['id']}")
    assert status == 204
