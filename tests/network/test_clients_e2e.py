"""The real `openstack` CLI and openstacksdk against `mininova serve` + a fake agent: what
`openstack network …`, `server create --network private` and the SDK's lookups see."""

from __future__ import annotations

import openstack
import pytest

from tests.e2e.procs import Serve, osc_json, run_client

pytestmark = pytest.mark.usefixtures("fake_agent")


def test_network_list_show_and_subnets(serve: Serve) -> None:
    env = serve.os_env()
    listed = osc_json(env, "network", "list")
    assert [n["Name"] for n in listed] == ["private"]
    shown = osc_json(env, "network", "show", "private")
    assert shown["id"] == listed[0]["ID"]
    assert shown["shared"] is True and shown["router:external"] is False
    assert shown["status"] == "ACTIVE" and shown["mtu"] == 1500
    subnets = osc_json(env, "subnet", "list")
    assert [(s["Network"], s["Subnet"]) for s in subnets] == [(shown["id"], "192.168.122.0/24")]
    assert osc_json(env, "network", "list", "--external") == []


def test_external_network_and_subnet(serve: Serve) -> None:
    env = serve.os_env()
    public = osc_json(env, "network", "create", "--external", "public")
    assert public["router:external"] is True and public["name"] == "public"
    subnet = osc_json(
        env,
        "subnet",
        "create",
        "--network",
        "public",
        "--subnet-range",
        "10.99.0.0/24",
        "--no-dhcp",
        "pubnet",
    )
    assert subnet["cidr"] == "10.99.0.0/24" and subnet["enable_dhcp"] is False
    assert subnet["gateway_ip"] == "10.99.0.1"
    assert subnet["network_id"] == public["id"]
    external = osc_json(env, "network", "list", "--external")
    assert [(n["Name"], n["Subnets"]) for n in external] == [("public", [subnet["id"]])]

    for cidr, message in (
        ("10.99.1.0/33", "is not a valid IP subnet"),
        ("10.99.0.128/25", "overlaps with another subnet"),
        ("192.168.122.0/25", "overlaps with another subnet"),
    ):
        proc = run_client(
            env,
            "openstack",
            "subnet",
            "create",
            "--network",
            "public",
            "--subnet-range",
            cidr,
            "bad",
            check=False,
        )
        assert proc.returncode != 0
        assert "400" in proc.stderr or "BadRequest" in proc.stderr, proc.stderr
        assert message in proc.stderr, proc.stderr
    names = [s["Name"] for s in osc_json(env, "subnet", "list")]
    assert sorted(names) == ["private-subnet", "pubnet"]

    run_client(env, "openstack", "subnet", "delete", "pubnet")
    run_client(env, "openstack", "network", "delete", "public")
    assert [n["Name"] for n in osc_json(env, "network", "list")] == ["private"]


def test_server_on_private_and_its_port(serve: Serve, image: str) -> None:
    env = serve.os_env()
    server = osc_json(
        env,
        "server",
        "create",
        "--image",
        "cirros",
        "--flavor",
        "m1.nano",
        "--network",
        "private",
        "--wait",
        "netvm",
    )
    assert server["status"] == "ACTIVE"
    shown = osc_json(env, "server", "show", "netvm")
    (address,) = shown["addresses"]["private"]
    ports = osc_json(env, "port", "list", "--server", "netvm")
    assert len(ports) == 1, ports
    port = ports[0]
    assert port["Status"] == "ACTIVE"
    assert port["MAC Address"].startswith("fa:16:3e:")
    assert [ip["ip_address"] for ip in port["Fixed IP Addresses"]] == [address]
    detail = osc_json(env, "port", "show", port["ID"])
    assert detail["device_id"] == server["id"]
    assert detail["device_owner"] == "compute:nova"
    assert detail["binding_host_id"] == "fake1"

    missing = "9b2d9c3e-0000-4000-8000-000000000001"
    proc = run_client(
        env,
        "openstack",
        "server",
        "create",
        "--image",
        "cirros",
        "--flavor",
        "m1.nano",
        "--nic",
        f"net-id={missing}",
        "badvm",
        check=False,
    )
    # OSC looks the id up in the network API first (Nova's own 400 is tested in-process).
    assert proc.returncode != 0
    assert missing in proc.stderr, proc.stderr
    run_client(env, "openstack", "server", "delete", "--wait", "netvm")


def test_sdk_finds_private(serve: Serve) -> None:
    conn = openstack.connect(
        auth_url=serve.url + "/identity/v3",
        username="admin",
        password=serve.password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )
    try:
        network = conn.network.find_network("private")
        assert network is not None and network.name == "private"
        assert network.is_shared and not network.is_router_external
        assert conn.network.find_network(network.id).id == network.id
        assert conn.network.find_network("nope") is None
        (subnet,) = list(conn.network.subnets(network_id=network.id))
        assert subnet.cidr == "192.168.122.0/24"
    finally:
        conn.close()
