"""The network API in-process: version documents, the catalog, `private` and its subnet,
admin-made external networks and subnets, ports derived from servers, Nova's `networks`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mininova.controller import Controller
from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient, login
from tests.kit.fake_cloud import fake_agent
from tests.kit.wait import wait_for

N = "/networking/v2.0"
SERVERS = "/compute/v2.1/servers"
NETWORK_KEYS = {
    "id",
    "name",
    "tenant_id",
    "project_id",
    "description",
    "admin_state_up",
    "status",
    "subnets",
    "shared",
    "router:external",
    "is_default",
    "mtu",
    "port_security_enabled",
    "availability_zone_hints",
    "availability_zones",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "l2_adjacency",
    "dns_domain",
    "qos_policy_id",
    "vlan_transparent",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
}
PROVIDER_KEYS = {"provider:network_type", "provider:physical_network", "provider:segmentation_id"}


def neutron_error(body: dict, kind: str | None = None) -> str:
    assert set(body) == {"NeutronError"}, body
    error = body["NeutronError"]
    assert set(error) == {"type", "message", "detail"} and error["detail"] == ""
    if kind is not None:
        assert error["type"] == kind, error
    return error["message"]


async def _private(api: ApiClient) -> dict:
    status, body, _ = await api.get(N + "/networks?name=private")
    assert status == 200, body
    (network,) = body["networks"]
    return network


@pytest.fixture
async def host(api: ApiClient, controller: Controller, tmp_path: Path) -> AsyncIterator[FakeDriver]:
    """One in-process fake agent, up."""
    async with fake_agent(controller, tmp_path, api=api) as driver:
        yield driver


async def test_catalog_and_version_documents(api: ApiClient, controller: Controller) -> None:
    creds = controller.credentials
    assert creds is not None
    _, token = await login(api.session, api.base, creds.username, creds.password, creds.project)
    (entry,) = [e for e in token["catalog"] if e["type"] == "network"]
    assert entry["name"] == "neutron"
    assert {e["url"] for e in entry["endpoints"]} == {api.base + "/networking"}

    status, body, _ = await api.get("/networking", token=False)
    assert status == 200
    assert body == {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"href": api.base + "/networking/v2.0", "rel": "self"}],
            }
        ]
    }
    status, body, _ = await api.get("/networking/v2.0", token=False)
    assert status == 200
    assert {r["collection"] for r in body["resources"]} == {
        "networks",
        "subnets",
        "ports",
        "security-groups",
        "security-group-rules",
        "floatingips",
        "quotas",
    }
    assert {"href": api.base + "/networking/v2.0/networks", "rel": "self"} in [
        link for r in body["resources"] for link in r["links"]
    ]
    status, body, _ = await api.get(N + "/networks", token=False)
    assert status == 401
    neutron_error(body, "HTTPUnauthorized")


async def test_private_network_and_subnet(api: ApiClient, member_api: ApiClient) -> None:
    status, body, _ = await member_api.get(N + "/networks")
    assert status == 200, body
    (private,) = body["networks"]
    assert set(private) == NETWORK_KEYS
    assert private["name"] == "private"
    assert private["shared"] is True and private["router:external"] is False
    assert private["status"] == "ACTIVE" and private["admin_state_up"] is True
    assert private["mtu"] == 1500 and len(private["subnets"]) == 1
    # The id os-networks always showed, and stable.
    _, nova, _ = await api.get("/compute/v2.1/os-networks", version="2.1")
    assert nova["networks"][0]["id"] == private["id"]
    _, admin_view, _ = await api.get(f"{N}/networks/{private['id']}")
    assert set(admin_view["network"]) == NETWORK_KEYS | PROVIDER_KEYS

    status, body, _ = await member_api.get(N + "/subnets")
    assert status == 200
    (subnet,) = body["subnets"]
    assert subnet["id"] == private["subnets"][0]
    assert subnet["network_id"] == private["id"]
    assert subnet["cidr"] == "192.168.122.0/24" and subnet["gateway_ip"] == "192.168.122.1"
    assert subnet["allocation_pools"] == [{"start": "192.168.122.2", "end": "192.168.122.254"}]
    assert subnet["ip_version"] == 4 and subnet["enable_dhcp"] is True
    status, shown, _ = await member_api.get(f"{N}/subnets/{subnet['id']}")
    assert status == 200 and shown["subnet"] == subnet


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("name=private", 1),
        ("name=public", 0),
        ("status=ACTIVE&name=private", 1),  # what Terraform sends
        ("shared=true", 1),
        ("shared=False", 0),
        ("router:external=False", 1),
        ("router:external=True", 0),
        ("name=private&name=other", 1),  # repeated keys are a list
        ("tags=foo", 0),
        ("not-tags=foo", 1),
    ],
)
async def test_network_filters(api: ApiClient, query: str, count: int) -> None:
    status, body, _ = await api.get(f"{N}/networks?{query}")
    assert status == 200, body
    assert len(body["networks"]) == count


async def test_fields_ids_projects_and_bad_filters(api: ApiClient) -> None:
    private = await _private(api)
    _, body, _ = await api.get(f"{N}/networks?fields=id&fields=name")
    assert body["networks"] == [{"id": private["id"], "name": "private"}]
    _, body, _ = await api.get(f"{N}/networks?id={private['id']}&fields=id,subnets")
    assert body["networks"] == [{"id": private["id"], "subnets": private["subnets"]}]
    _, body, _ = await api.get(f"{N}/networks/{private['id']}?fields=name")
    assert body == {"network": {"name": "private"}}
    _, body, _ = await api.get(f"{N}/networks?project_id={api.project_id}")
    assert body["networks"] == []
    _, body, _ = await api.get(f"{N}/subnets?network_id={private['id']}&fields=cidr")
    assert body["subnets"] == [{"cidr": "192.168.122.0/24"}]

    status, body, _ = await api.get(f"{N}/networks?colour=red")
    assert status == 400
    assert neutron_error(body, "HTTPBadRequest") == "[colour] is invalid attribute for filtering"
    status, body, _ = await api.get(f"{N}/networks?shared=maybe")
    assert status == 400
    assert "cannot be converted to boolean" in neutron_error(body, "InvalidInput")
    status, body, _ = await api.get(f"{N}/networks/{'0' * 8}-0000-0000-0000-{'0' * 12}")
    assert status == 404
    assert neutron_error(body, "NetworkNotFound") == (
        "Network 00000000-0000-0000-0000-000000000000 could not be found."
    )
    status, body, _ = await api.get(f"{N}/subnets/nope")
    assert status == 404
    assert neutron_error(body, "SubnetNotFound") == "Subnet nope could not be found."
    status, body, _ = await api.get(f"{N}/ports/nope")
    assert status == 404
    assert neutron_error(body, "PortNotFound") == "Port nope could not be found."
    status, body, _ = await api.get(f"{N}/routers")
    assert status == 404
    neutron_error(body, "HTTPNotFound")


async def _external(api: ApiClient, name: str = "public") -> dict:
    status, body, _ = await api.post(
        N + "/networks", json={"network": {"name": name, "router:external": True}}
    )
    assert status == 201, body
    return body["network"]


async def _subnet(api: ApiClient, network_id: str, cidr: str, **extra: object) -> tuple[int, dict]:
    spec = {"network_id": network_id, "cidr": cidr, "ip_version": 4, **extra}
    status, body, _ = await api.post(N + "/subnets", json={"subnet": spec})
    return status, body


async def test_admin_external_network_and_subnet(api: ApiClient, member_api: ApiClient) -> None:
    public = await _external(api)
    assert public["router:external"] is True and public["shared"] is False
    assert public["project_id"] == api.project_id and public["subnets"] == []

    status, body = await _subnet(
        api, public["id"], "10.99.0.0/24", name="pubnet", enable_dhcp=False
    )
    assert status == 201, body
    subnet = body["subnet"]
    assert subnet["cidr"] == "10.99.0.0/24" and subnet["gateway_ip"] == "10.99.0.1"
    assert subnet["allocation_pools"] == [{"start": "10.99.0.2", "end": "10.99.0.254"}]
    assert subnet["enable_dhcp"] is False and subnet["name"] == "pubnet"

    # Members see it (external), with its subnet; they cannot create or delete networks.
    _, body, _ = await member_api.get(N + "/networks?router:external=true")
    assert [(n["name"], n["subnets"]) for n in body["networks"]] == [("public", [subnet["id"]])]
    _, body, _ = await member_api.get(N + "/subnets")
    assert {s["cidr"] for s in body["subnets"]} == {"192.168.122.0/24", "10.99.0.0/24"}
    status, body, _ = await member_api.post(
        N + "/networks", json={"network": {"name": "x", "router:external": True}}
    )
    assert status == 403
    neutron_error(body, "PolicyNotAuthorized")
    status, body = await _subnet(member_api, public["id"], "10.98.0.0/24")
    assert status == 403
    status, body, _ = await member_api.delete(f"{N}/networks/{public['id']}")
    assert status == 403

    # The database keeps them (the network's subnets go with it).
    status, _, _ = await api.delete(f"{N}/subnets/{subnet['id']}")
    assert status == 204
    status, _ = await _subnet(api, public["id"], "10.99.0.0/24")
    assert status == 201
    status, _, _ = await api.delete(f"{N}/networks/{public['id']}")
    assert status == 204
    _, body, _ = await api.get(N + "/subnets")
    assert [s["cidr"] for s in body["subnets"]] == ["192.168.122.0/24"]
    status, body, _ = await api.delete(f"{N}/networks/{public['id']}")
    assert status == 404
    neutron_error(body, "NetworkNotFound")


@pytest.mark.parametrize(
    ("cidr", "extra", "status", "kind", "text"),
    [
        ("10.99.0.0/33", {}, 400, "HTTPBadRequest", "'10.99.0.0/33' is not a valid IP subnet"),
        ("banana", {}, 400, "HTTPBadRequest", "is not a valid IP subnet"),
        ("10.99.0.1/24", {}, 400, "HTTPBadRequest", "'10.99.0.0/24' is recommended"),
        ("192.168.122.128/25", {}, 400, "InvalidInput", "overlaps with another subnet"),
        ("192.168.0.0/16", {}, 400, "InvalidInput", "overlaps with another subnet"),
        ("10.99.0.0/24", {"gateway_ip": "10.1.0.1"}, 400, "InvalidInput", "is not valid on"),
        (
            "10.99.0.0/24",
            {"allocation_pools": [{"start": "10.99.1.2", "end": "10.99.1.9"}]},
            400,
            "OutOfBoundsAllocationPool",
            "spans beyond the subnet cidr",
        ),
        ("10.99.0.0/24", {"ip_version": 6}, 400, "InvalidInput", "Cidr and IP version"),
        ("10.99.0.0/24", {"colour": "red"}, 400, "HTTPBadRequest", "Unrecognized attribute"),
    ],
)
async def test_invalid_subnets(
    api: ApiClient, cidr: str, extra: dict, status: int, kind: str, text: str
) -> None:
    public = await _external(api)
    got, body = await _subnet(api, public["id"], cidr, **extra)
    assert got == status, body
    assert text in neutron_error(body, kind)


async def test_subnet_overlap_between_external_networks_and_private_rules(
    api: ApiClient,
) -> None:
    public = await _external(api)
    status, _ = await _subnet(api, public["id"], "10.99.0.0/24")
    assert status == 201
    other = await _external(api, "public2")
    status, body = await _subnet(api, other["id"], "10.99.0.128/25")
    assert status == 400
    assert "overlaps with another subnet" in neutron_error(body, "InvalidInput")
    private = await _private(api)
    status, body = await _subnet(api, private["id"], "10.50.0.0/24")
    assert status == 400
    neutron_error(body, "InvalidInput")
    status, body, _ = await api.delete(f"{N}/networks/{private['id']}")
    assert status == 409
    neutron_error(body, "NetworkInUse")
    status, body, _ = await api.post(N + "/networks", json={"network": {"name": "tenantnet"}})
    assert status == 400
    neutron_error(body, "InvalidInput")
    status, body, _ = await api.post(N + "/networks", json={"net": {}})
    assert status == 400
    neutron_error(body, "HTTPBadRequest")


async def test_reader_cannot_write(api: ApiClient, controller: Controller) -> None:
    _, roles, _ = await api.get("/identity/v3/roles?name=reader")
    rid = roles["roles"][0]["id"]
    _, user, _ = await api.post(
        "/identity/v3/users", json={"user": {"name": "ro", "password": "pw"}}
    )
    uid = user["user"]["id"]
    await api.put(f"/identity/v3/projects/{api.project_id}/users/{uid}/roles/{rid}")
    creds = controller.credentials
    assert creds is not None
    token, _ = await login(api.session, api.base, "ro", "pw", creds.project)
    status, body, _ = await api.post(
        N + "/networks", json={"network": {"router:external": True}}, token=token
    )
    assert status == 403
    neutron_error(body, "HTTPForbidden")


async def _boot(api: ApiClient, name: str, networks: object) -> tuple[int, dict]:
    image = await api.upload_image(name + "-img")
    status, body, _ = await api.post(
        SERVERS,
        json={"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": networks}},
        version="2.100",
    )
    return status, body


async def test_ports_follow_servers(
    api: ApiClient, member_api: ApiClient, host: FakeDriver
) -> None:
    private = await _private(api)
    status, body = await _boot(member_api, "vm1", [{"uuid": private["id"]}])
    assert status == 202, body
    uuid = body["server"]["id"]
    server = await member_api.wait_server(uuid, "ACTIVE")
    (address,) = server["addresses"]["private"]
    mac = address["OS-EXT-IPS-MAC:mac_addr"]

    status, body, _ = await member_api.get(f"{N}/ports?device_id={uuid}")
    assert status == 200, body
    (port,) = body["ports"]
    assert port["mac_address"] == mac
    assert port["device_id"] == uuid and port["device_owner"] == "compute:nova"
    assert port["network_id"] == private["id"] and port["status"] == "ACTIVE"
    assert port["project_id"] == member_api.project_id
    # The fake driver's 10.0.x.y is outside the libvirt subnet: shown, without a subnet.
    assert port["fixed_ips"] == [{"subnet_id": None, "ip_address": address["addr"]}]
    assert "binding:host_id" not in port
    status, shown, _ = await member_api.get(f"{N}/ports/{port['id']}")
    assert status == 200 and shown["port"] == port

    _, admin_view, _ = await api.get(f"{N}/ports/{port['id']}")
    assert admin_view["port"]["binding:host_id"] == "node1"
    for query in (
        f"mac_address={mac}",
        f"fixed_ips=ip_address={address['addr']}",
        f"network_id={private['id']}",
        "device_owner=compute:nova",
        f"id={port['id']}",
    ):
        _, body, _ = await member_api.get(f"{N}/ports?{query}")
        assert [p["id"] for p in body["ports"]] == [port["id"]], query
    _, body, _ = await member_api.get(f"{N}/ports?fixed_ips=ip_address=10.255.255.255")
    assert body["ports"] == []

    # Another project sees no port of it; the id is stable.
    status, body, _ = await api.get(f"{N}/ports?device_id={uuid}&fields=id")
    assert body["ports"] == [{"id": port["id"]}]
    _, other, _ = await api.post("/identity/v3/projects", json={"project": {"name": "other"}})
    status, body, _ = await member_api.get(f"{N}/ports")
    assert [p["device_id"] for p in body["ports"]] == [uuid]

    # Deleted server: no port.
    status, _, _ = await member_api.delete(f"{SERVERS}/{uuid}")
    assert status == 204

    async def gone() -> bool:
        _, body, _ = await member_api.get(f"{N}/ports")
        return body["ports"] == []

    await wait_for(gone, 10, 0.05, "the port to go with its server")


async def test_ports_are_project_scoped(
    api: ApiClient, member_api: ApiClient, host: FakeDriver
) -> None:
    status, body = await _boot(api, "adminvm", "auto")
    assert status == 202, body
    await api.wait_server(body["server"]["id"], "ACTIVE")
    _, body, _ = await member_api.get(f"{N}/ports")
    assert body["ports"] == []
    _, body, _ = await api.get(f"{N}/ports")
    assert len(body["ports"]) == 1


async def test_server_create_networks(api: ApiClient) -> None:
    missing = "9b2d9c3e-0000-4000-8000-000000000001"
    status, body = await _boot(api, "bad", [{"uuid": missing}])
    assert status == 400
    assert body["badRequest"]["message"] == f"Network {missing} could not be found."
    status, body = await _boot(api, "bad", [{"uuid": "private"}])
    assert status == 400
    assert "network uuid is not in proper format" in body["badRequest"]["message"]
    status, body = await _boot(api, "bad", [{"port": missing}])
    assert status == 400
    assert body["badRequest"]["message"] == f"Port id {missing} could not be found."
    public = await _external(api)
    status, body = await _boot(api, "bad", [{"uuid": public["id"]}])
    assert status == 400
    _, listed, _ = await api.get(SERVERS)
    assert listed["servers"] == []
    private = await _private(api)
    for networks in ("auto", "none", [{"uuid": private["id"]}]):
        status, body = await _boot(api, "ok", networks)
        assert status == 202, (networks, body)


async def test_quotas_read_only(api: ApiClient, member_api: ApiClient) -> None:
    status, body, _ = await member_api.get(f"{N}/quotas/{member_api.project_id}")
    assert status == 200
    assert body["quota"]["network"] == -1 and body["quota"]["port"] == -1
    status, body, _ = await member_api.get(f"{N}/quotas/{member_api.project_id}/details.json")
    assert status == 200
    assert body["quota"]["port"] == {"limit": -1, "used": 0, "reserved": 0}
    status, body, _ = await member_api.get(f"{N}/quotas/{api.project_id}")
    assert status == 403
    neutron_error(body, "PolicyNotAuthorized")
    status, body, _ = await api.get(f"{N}/quotas")
    assert status == 200 and body == {"quotas": []}
