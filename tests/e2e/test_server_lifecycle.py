"""Issue 2 end to end: real `openstack`, openstacksdk and novaclient against real processes."""

from __future__ import annotations

import json

import pytest

from tests.e2e.procs import Agent, Serve, osc_json, run_client, wait_until

pytestmark = pytest.mark.usefixtures("fake_agent")


def _status(env: dict[str, str], name: str) -> str:
    return osc_json(env, "server", "show", name)["status"]


def _wait_status(env: dict[str, str], name: str, status: str, timeout: float = 30) -> None:
    wait_until(
        lambda: _status(env, name) == status, timeout, interval=0.5, what=f"{name} to be {status}"
    )


def test_create_wait_show_list(serve: Serve, image: str, keypair: str) -> None:
    env = serve.os_env()
    server = osc_json(
        env,
        "server",
        "create",
        "--image",
        "cirros",
        "--flavor",
        "m1.nano",
        "--key-name",
        keypair,
        "--wait",
        "vm1",
    )
    assert server["status"] == "ACTIVE"
    assert server["key_name"] == keypair
    shown = osc_json(env, "server", "show", "vm1")
    assert shown["id"] == server["id"]
    assert shown["OS-EXT-STS:vm_state"] == "active"
    assert shown["OS-EXT-SRV-ATTR:host"] == "fake1"
    assert shown["addresses"], "an ACTIVE server must have an address"
    listed = osc_json(env, "server", "list")
    assert [s["Name"] for s in listed] == ["vm1"]
    assert listed[0]["Status"] == "ACTIVE"


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["server", "stop"], "SHUTOFF"),
        (["server", "start"], "ACTIVE"),
        (["server", "reboot"], "ACTIVE"),
        (["server", "reboot", "--hard"], "ACTIVE"),
        (["server", "pause"], "PAUSED"),
        (["server", "unpause"], "ACTIVE"),
        (["server", "suspend"], "SUSPENDED"),
        (["server", "resume"], "ACTIVE"),
    ],
)
def test_power_actions(serve: Serve, command: list[str], status: str) -> None:
    env = serve.os_env()
    run_client(env, "openstack", *command, "vm1")
    _wait_status(env, "vm1", status)
    shown = osc_json(env, "server", "show", "vm1")
    assert shown["OS-EXT-STS:task_state"] is None


@pytest.mark.first_backend_only
def test_resource_commands(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> None:
    env = serve.os_env()
    # flavors
    assert "m1.nano" in {f["Name"] for f in osc_json(env, "flavor", "list")}
    nano = osc_json(env, "flavor", "show", "m1.nano")
    assert (nano["ram"], nano["vcpus"]) == (64, 1)
    created = osc_json(
        env, "flavor", "create", "--ram", "256", "--vcpus", "2", "--disk", "2", "e2e.flavor"
    )
    assert (created["ram"], created["vcpus"], created["disk"]) == (256, 2, 2)
    run_client(env, "openstack", "flavor", "delete", "e2e.flavor")
    assert "e2e.flavor" not in {f["Name"] for f in osc_json(env, "flavor", "list")}
    # images
    path = tmp_path_factory.mktemp("img2") / "raw.img"
    path.write_bytes(b"\0" * 4096)
    osc_json(env, "image", "create", "--file", str(path), "--disk-format", "raw", "e2e-img")
    shown = osc_json(env, "image", "show", "e2e-img")
    assert shown["status"] == "active" and shown["size"] == 4096
    assert "e2e-img" in {i["Name"] for i in osc_json(env, "image", "list")}
    run_client(env, "openstack", "image", "delete", "e2e-img")
    assert "e2e-img" not in {i["Name"] for i in osc_json(env, "image", "list")}
    # keypairs
    run_client(env, "openstack", "keypair", "create", "e2e-key")
    assert "e2e-key" in {k["Name"] for k in osc_json(env, "keypair", "list")}
    assert osc_json(env, "keypair", "show", "e2e-key")["fingerprint"].count(":") == 15
    run_client(env, "openstack", "keypair", "delete", "e2e-key")
    assert "e2e-key" not in {k["Name"] for k in osc_json(env, "keypair", "list")}
    # infrastructure views
    hypervisors = osc_json(env, "hypervisor", "list")
    assert [(h["Hypervisor Hostname"], h["State"]) for h in hypervisors] == [("fake1", "up")]
    services = {(s["Binary"], s["Host"]) for s in osc_json(env, "compute", "service", "list")}
    assert ("nova-compute", "fake1") in services
    zones = osc_json(env, "availability", "zone", "list")
    assert ("nova", "available") in {(z["Zone Name"], z["Zone Status"]) for z in zones}
    limits = {row["Name"]: row["Value"] for row in osc_json(env, "limits", "show", "--absolute")}
    assert limits["max_total_instances"] == 10 and limits["instances_used"] == 1


def test_conflicting_action_is_409(serve: Serve) -> None:
    env = serve.os_env()
    proc = run_client(env, "openstack", "server", "unpause", "vm1", check=False)
    assert proc.returncode != 0
    assert "409" in proc.stderr or "Cannot" in proc.stderr


def test_console_log_show(serve: Serve) -> None:
    env = serve.os_env()
    out = run_client(env, "openstack", "console", "log", "show", "vm1").stdout
    assert "hostname=vm1" in out
    two = run_client(env, "openstack", "console", "log", "show", "--lines", "2", "vm1").stdout
    assert len(two.strip().splitlines()) == 2


def test_instance_actions_recorded(serve: Serve) -> None:
    env = serve.os_env()
    actions = osc_json(env, "server", "event", "list", "vm1")
    names = [a["Action"] for a in actions]
    assert "create" in names and "stop" in names and "reboot" in names


def test_novaclient_list(serve: Serve) -> None:
    out = run_client(serve.os_env(), "nova", "list").stdout
    assert "vm1" in out and "ACTIVE" in out


def test_sdk_create_and_delete_wait(serve: Serve, image: str) -> None:
    import openstack

    conn = openstack.connect(
        auth_url=serve.url + "/identity/v3",
        username="admin",
        password=serve.password,
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
        floating_ip_source="None",
    )
    try:
        server = conn.create_server("sdk1", image="cirros", flavor="m1.nano", wait=True, timeout=60)
        assert server.status == "ACTIVE"
        assert server.addresses
        assert conn.delete_server("sdk1", wait=True, timeout=60)
        assert conn.get_server("sdk1") is None
    finally:
        conn.close()


@pytest.mark.first_backend_only
def test_other_project_sees_only_its_servers(serve: Serve, image: str) -> None:
    admin = serve.os_env()
    run_client(admin, "openstack", "project", "create", "class1")
    run_client(
        admin,
        "openstack",
        "user",
        "create",
        "--project",
        "class1",
        "--password",
        "pw-student",
        "student1",
    )
    run_client(
        admin, "openstack", "role", "add", "--project", "class1", "--user", "student1", "member"
    )
    student = serve.os_env("student1", "pw-student", "class1")
    assert osc_json(student, "server", "list") == []
    osc_json(
        student,
        "server",
        "create",
        "--image",
        "cirros",
        "--flavor",
        "m1.nano",
        "--wait",
        "student-vm",
    )
    names = [s["Name"] for s in osc_json(student, "server", "list")]
    assert names == ["student-vm"]
    # The admin's vm1 is invisible to the student, even by id.
    vm1_id = osc_json(admin, "server", "show", "vm1")["id"]
    proc = run_client(student, "openstack", "server", "show", vm1_id, check=False)
    assert proc.returncode != 0 and "No Server found" in proc.stderr + proc.stdout
    # The student cannot use admin APIs.
    proc = run_client(student, "openstack", "hypervisor", "list", check=False)
    assert proc.returncode != 0 and "403" in proc.stderr
    all_names = {s["Name"] for s in osc_json(admin, "server", "list", "--all-projects")}
    assert {"vm1", "student-vm"} <= all_names
    run_client(student, "openstack", "server", "delete", "--wait", "student-vm")


def test_restart_serve_keeps_state_and_agent_resyncs(serve: Serve, fake_agent: Agent) -> None:
    env = serve.os_env()
    before = osc_json(env, "server", "show", "vm1")
    flavors_before = {f["Name"] for f in osc_json(env, "flavor", "list")}
    run_client(env, "openstack", "user", "create", "--password", "pw-keeper", "keeper")
    users_before = {u["Name"] for u in osc_json(env, "user", "list")}
    assert serve.stop() == 0
    serve.start()
    env = serve.os_env()  # the password survives: same credentials file
    after = osc_json(env, "server", "show", "vm1")
    assert after["id"] == before["id"] and after["status"] == "ACTIVE"
    assert {f["Name"] for f in osc_json(env, "flavor", "list")} == flavors_before
    assert [i["Name"] for i in osc_json(env, "image", "list")] == ["cirros"]
    users = {u["Name"] for u in osc_json(env, "user", "list")}
    assert users == users_before and {"admin", "keeper"} <= users
    # The agent reconnects by itself and the host reads up again.
    wait_until(
        lambda: any(
            s["State"] == "up"
            for s in osc_json(env, "compute", "service", "list", "--service", "nova-compute")
        ),
        30,
        interval=0.5,
        what="agent to reconnect",
    )
    # Restarting the agent: the guest is re-adopted, still ACTIVE, no duplicates.
    fake_agent.stop()
    fake_agent.start()
    run_client(env, "openstack", "server", "stop", "vm1")
    _wait_status(env, "vm1", "SHUTOFF")
    run_client(env, "openstack", "server", "start", "vm1")
    _wait_status(env, "vm1", "ACTIVE")
    assert [s["Name"] for s in osc_json(env, "server", "list")] == ["vm1"]


@pytest.mark.first_backend_only
def test_snapshot_then_boot_from_it(serve: Serve) -> None:
    env = serve.os_env()
    image = osc_json(env, "server", "image", "create", "--name", "snap1", "--wait", "vm1")
    assert image["status"] == "active"
    shown = osc_json(env, "image", "show", "snap1")
    assert shown["properties"]["image_type"] == "snapshot"
    assert shown["properties"]["instance_uuid"] == osc_json(env, "server", "show", "vm1")["id"]
    assert shown["size"] > 0
    server = osc_json(
        env, "server", "create", "--image", "snap1", "--flavor", "m1.nano", "--wait", "from-snap"
    )
    assert server["status"] == "ACTIVE"
    run_client(env, "openstack", "server", "delete", "--wait", "from-snap")
    assert osc_json(env, "server", "show", "vm1")["OS-EXT-STS:task_state"] is None


def test_delete_wait(serve: Serve) -> None:
    env = serve.os_env()
    run_client(env, "openstack", "server", "delete", "--wait", "vm1")
    assert osc_json(env, "server", "list") == []
    raw = run_client(env, "openstack", "server", "list", "--deleted", "-f", "json", check=False)
    if raw.returncode == 0:
        assert "vm1" not in json.loads(raw.stdout or "[]")
