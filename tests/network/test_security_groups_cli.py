"""The real `openstack` CLI against `mininova serve` + a fake agent: security groups and their
rules, servers in groups, and the errors Neutron gives for bad rules."""

from __future__ import annotations

import pytest

from tests.e2e.procs import Serve, osc_json, run_client

pytestmark = pytest.mark.usefixtures("fake_agent")


def _fails(env: dict[str, str], *args: str) -> str:
    """stderr of an `openstack` command that must fail."""
    proc = run_client(env, "openstack", *args, check=False)
    assert proc.returncode != 0, f"openstack {' '.join(args)} succeeded: {proc.stdout}"
    return proc.stderr


def test_security_group_lifecycle(serve: Serve) -> None:
    env = serve.os_env()
    web = osc_json(env, "security", "group", "create", "--description", "web tier", "web")
    assert web["name"] == "web" and web["description"] == "web tier"
    # A new group allows all egress, IPv4 and IPv6, and nothing in.
    rules = osc_json(env, "security", "group", "rule", "list", "web")
    assert sorted((r["Direction"], r["Ethertype"]) for r in rules) == [
        ("egress", "IPv4"),
        ("egress", "IPv6"),
    ], rules
    listed = {g["Name"]: g for g in osc_json(env, "security", "group", "list")}
    assert {"default", "web"} <= set(listed), listed
    assert listed["web"]["ID"] == web["id"]

    ssh = osc_json(
        env, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "web"
    )
    assert ssh["direction"] == "ingress" and ssh["protocol"] == "tcp"
    assert (ssh["port_range_min"], ssh["port_range_max"]) == (22, 22)
    assert ssh["remote_ip_prefix"] == "0.0.0.0/0" and ssh["security_group_id"] == web["id"]
    shown = osc_json(env, "security", "group", "show", "web")
    ingress = [r for r in shown["rules"] if r["direction"] == "ingress"]
    assert [(r["protocol"], r["port_range_min"]) for r in ingress] == [("tcp", 22)], shown

    # The same rule twice is a conflict.
    assert "409" in _fails(
        env, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22", "web"
    )
    run_client(env, "openstack", "security", "group", "rule", "delete", ssh["id"])
    assert not [
        r for r in osc_json(env, "security", "group", "rule", "list", "web") if r["ID"] == ssh["id"]
    ]
    run_client(env, "openstack", "security", "group", "delete", "web")
    assert "web" not in {g["Name"] for g in osc_json(env, "security", "group", "list")}


def test_server_in_groups(serve: Serve, image: str) -> None:
    env = serve.os_env()
    osc_json(env, "security", "group", "create", "app")
    osc_json(env, "security", "group", "create", "ops")
    server = osc_json(
        env,
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        "m1.nano",
        "--network",
        "private",
        "--security-group",
        "app",
        "--wait",
        "sgvm",
    )
    assert server["status"] == "ACTIVE"

    def groups() -> list[str]:
        shown = osc_json(env, "server", "show", "sgvm")
        return sorted(g["name"] for g in shown["security_groups"])

    assert groups() == ["app"]
    run_client(env, "openstack", "server", "add", "security", "group", "sgvm", "ops")
    assert groups() == ["app", "ops"]
    # The port reports the groups too.
    (port,) = osc_json(env, "port", "list", "--server", "sgvm", "--long")
    detail = osc_json(env, "port", "show", port["ID"])
    app = osc_json(env, "security", "group", "show", "app")
    assert app["id"] in detail["security_group_ids"], detail
    # A group a server uses cannot be deleted.
    assert "409" in _fails(env, "security", "group", "delete", "app")
    run_client(env, "openstack", "server", "remove", "security", "group", "sgvm", "app")
    assert groups() == ["ops"]
    # Unknown group at create: Nova's 400.
    stderr = _fails(
        env,
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        "m1.nano",
        "--security-group",
        "no-such-group",
        "badvm",
    )
    assert "no-such-group" in stderr, stderr
    run_client(env, "openstack", "server", "delete", "--wait", "sgvm")
    run_client(env, "openstack", "security", "group", "delete", "app", "ops")


BAD_RULES = [
    (("--protocol", "tcp", "--dst-port", "0"), "port"),
    (("--protocol", "tcp", "--dst-port", "70000"), "port"),
    (("--protocol", "icmp", "--icmp-type", "300"), "300"),
    (("--protocol", "bogus"), "bogus"),
    (("--protocol", "tcp", "--remote-ip", "10.0.0.0/33"), "10.0.0.0/33"),
]


def test_bad_rules_are_refused_and_leave_nothing(serve: Serve) -> None:
    env = serve.os_env()
    osc_json(env, "security", "group", "create", "strict")
    before = osc_json(env, "security", "group", "rule", "list", "strict")
    for args, needle in BAD_RULES:
        stderr = _fails(env, "security", "group", "rule", "create", *args, "strict")
        assert "400" in stderr and needle in stderr, (args, stderr)
    assert osc_json(env, "security", "group", "rule", "list", "strict") == before


def test_another_projects_group_is_not_found(serve: Serve) -> None:
    admin = serve.os_env()
    run_client(admin, "openstack", "project", "create", "sg-other")
    run_client(
        admin,
        "openstack",
        "user",
        "create",
        "--project",
        "sg-other",
        "--password",
        "pw-sg-other",
        "sg-student",
    )
    run_client(
        admin,
        "openstack",
        "role",
        "add",
        "--project",
        "sg-other",
        "--user",
        "sg-student",
        "member",
    )
    private = osc_json(admin, "security", "group", "create", "admins-only")
    student = serve.os_env("sg-student", "pw-sg-other", "sg-other")
    stderr = _fails(
        student,
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        private["id"],
    )
    assert "404" in stderr or "No SecurityGroup found" in stderr, stderr
    assert private["id"] not in {g["ID"] for g in osc_json(student, "security", "group", "list")}
    # The student's own project got its own default group.
    assert [g["Name"] for g in osc_json(student, "security", "group", "list")] == ["default"]
    run_client(admin, "openstack", "security", "group", "delete", private["id"])
