"""Floating IPs with the real `openstack` CLI and openstacksdk's cloud layer (what Ansible's
openstack.cloud.server does with its default `auto_ip: true`) against `mininova serve` + a
fake agent."""

from __future__ import annotations

from collections.abc import Iterator

import openstack
import pytest

from tests.e2e.procs import Serve, osc_json, run_client

pytestmark = pytest.mark.usefixtures("fake_agent")


@pytest.fixture(scope="module")
def public(serve: Serve) -> Iterator[str]:
    """The admin's external network `public`, one subnet with a small allocation pool."""
    env = serve.os_env()
    network = osc_json(env, "network", "create", "--external", "public")
    osc_json(
        env,
        "subnet",
        "create",
        "--network",
        "public",
        "--subnet-range",
        "172.24.4.0/24",
        "--allocation-pool",
        "start=172.24.4.10,end=172.24.4.20",
        "--no-dhcp",
        "public-subnet",
    )
    yield network["id"]


def test_floating_ip_lifecycle(serve: Serve, image: str, public: str) -> None:
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
        "fipvm",
    )
    (fixed,) = osc_json(env, "server", "show", "fipvm")["addresses"]["private"]

    fip = osc_json(env, "floating", "ip", "create", "public")
    assert fip["floating_ip_address"] == "172.24.4.10"
    assert fip["floating_network_id"] == public and fip["status"] == "DOWN"
    address = fip["floating_ip_address"]

    run_client(env, "openstack", "server", "add", "floating", "ip", "fipvm", address)
    (listed,) = osc_json(env, "floating", "ip", "list")
    assert listed["Floating IP Address"] == address
    assert listed["Fixed IP Address"] == fixed
    assert listed["Floating Network"] == public
    (port,) = osc_json(env, "port", "list", "--server", "fipvm")
    assert listed["Port"] == port["ID"]
    shown = osc_json(env, "floating", "ip", "show", address)
    assert shown["status"] == "ACTIVE" and shown["port_id"] == port["ID"]
    assert shown["port_details"]["device_id"] == server["id"]

    (row,) = osc_json(env, "server", "list")
    assert row["Networks"] == {"private": [fixed, address]}
    addresses = osc_json(env, "server", "show", "fipvm")["addresses"]
    assert addresses == {"private": [fixed, address]}
    assert osc_json(env, "floating", "ip", "list", "--status", "ACTIVE")[0]["ID"] == fip["id"]

    run_client(env, "openstack", "server", "remove", "floating", "ip", "fipvm", address)
    shown = osc_json(env, "floating", "ip", "show", address)
    assert shown["status"] == "DOWN" and shown["port_id"] is None
    (row,) = osc_json(env, "server", "list")
    assert row["Networks"] == {"private": [fixed]}

    # A network with floating IPs cannot go.
    proc = run_client(env, "openstack", "network", "delete", "public", check=False)
    assert proc.returncode != 0

    run_client(env, "openstack", "floating", "ip", "delete", address)
    assert osc_json(env, "floating", "ip", "list") == []
    run_client(env, "openstack", "server", "delete", "--wait", "fipvm")


def test_sdk_create_server_auto_ip(serve: Serve, image: str, public: str) -> None:
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
        server = conn.create_server(
            "sdkvm", image="cirros", flavor="m1.nano", auto_ip=True, wait=True, timeout=60
        )
        assert server.status == "ACTIVE"
        (fip,) = list(conn.network.ips())
        assert fip.port_id is not None and fip.status == "ACTIVE"
        kinds = [(a["OS-EXT-IPS:type"], a["addr"]) for a in server.addresses["private"]]
        assert kinds == [("fixed", fip.fixed_ip_address), ("floating", fip.floating_ip_address)]
        # The cloud layer's own view (what Ansible reports): public_v4 is the floating IP.
        shown = conn.get_server("sdkvm")
        assert shown.public_v4 == fip.floating_ip_address
        assert shown.private_v4 == fip.fixed_ip_address
        # The SDK finds it again: a second call does not add another.
        again = conn.add_ips_to_server(conn.get_server("sdkvm"), auto_ip=True, wait=True)
        assert again.public_v4 == fip.floating_ip_address
        assert len(list(conn.network.ips())) == 1
        assert conn.delete_server("sdkvm", wait=True, delete_ips=True, timeout=60)
        assert list(conn.network.ips()) == []
    finally:
        conn.close()
