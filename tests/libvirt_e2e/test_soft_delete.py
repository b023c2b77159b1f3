"""Soft delete on a real libvirtd: `openstack server delete` shuts the domain off and keeps it
(SOFT_DELETED), `server restore` runs it again (ACTIVE), `server delete --force` removes the
domain and its files. The cloud runs with MININOVA_RECLAIM_INSTANCE_INTERVAL=3600."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.libvirt_e2e.conftest import HOST, Cloud, real_cloud
from tests.libvirt_e2e.host import TINY_IMAGE, domstate, host_skip_reason, virsh

SKIP_REASON = host_skip_reason()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
]

FLAVOR = "m1.micro"  # the tiny guest needs more than m1.nano (see test_libvirt_cloud.py)
BOOT_TIMEOUT = 180


@pytest.fixture(scope="module")
def cloud(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    env = {"MININOVA_RECLAIM_INSTANCE_INTERVAL": "3600"}
    with real_cloud(request, HOST, Cloud, "mininova-e2e-softdel-", env=env) as cl:
        yield cl


def _assert_domstate(cloud: Cloud, domain: str, expected: str) -> None:
    state = domstate(domain)
    assert state == expected, f"virsh domstate {domain}: {state!r}, wanted {expected!r}"


def test_soft_delete_shuts_off_and_restore_runs_again(cloud: Cloud) -> None:
    cloud.run(
        "image",
        "create",
        "--file",
        str(TINY_IMAGE),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "tiny",
    )
    server = cloud.json("server", "create", "--image", "tiny", "--flavor", FLAVOR, "--wait", "sd1")
    cloud.ids.add(server["id"])
    assert server["status"] == "ACTIVE", server
    domain = cloud.show("sd1")["OS-EXT-SRV-ATTR:instance_name"]
    # A booted guest answers the ACPI shutdown of the power-off at once.
    cloud.wait(lambda: "boot done" in cloud.console("sd1"), BOOT_TIMEOUT, "sd1 to boot")
    _assert_domstate(cloud, domain, "running")

    cloud.run("server", "delete", "sd1")
    shown = cloud.wait_status("sd1", "SOFT_DELETED")
    assert shown["OS-EXT-STS:vm_state"] == "soft-delete"
    _assert_domstate(cloud, domain, "shut off")  # powered off, still defined
    assert (cloud.instances / server["id"] / "disk").exists()

    cloud.run("server", "restore", "sd1")
    cloud.wait_status("sd1", "ACTIVE")
    _assert_domstate(cloud, domain, "running")

    cloud.run("server", "delete", "--force", "sd1")
    cloud.wait(
        lambda: cloud.run("server", "show", server["id"], check=False).returncode != 0,
        60,
        "sd1 to be deleted",
    )
    assert virsh("dominfo", domain).returncode != 0, f"{domain} still defined"
    assert not (cloud.instances / server["id"]).exists()
