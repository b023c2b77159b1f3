"""Services, hypervisors, availability zones, limits, quota sets, extensions, os-networks."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from mininova import quota
from mininova.api.compute.networks import PRIVATE_NETWORK_ID
from mininova.controller import Controller
from mininova.errors import QuotaExceeded
from mininova.store import allocations, hosts, instances
from mininova.store.db import dumps
from mininova.timeutil import iso, now_iso, now_utc
from tests.api.cli import run_openstack
from tests.conftest import ApiClient
from tests.kit.clock import FakeClock

C = "/compute/v2.1"

HYP_DETAIL_21 = {
    "cpu_info",
    "current_workload",
    "disk_available_least",
    "host_ip",
    "free_disk_gb",
    "free_ram_mb",
    "hypervisor_hostname",
    "hypervisor_type",
    "hypervisor_version",
    "id",
    "local_gb",
    "local_gb_used",
    "memory_mb",
    "memory_mb_used",
    "running_vms",
    "service",
    "vcpus",
    "vcpus_used",
    "state",
    "status",
}
HYP_DETAIL_288 = {
    "id",
    "hypervisor_hostname",
    "hypervisor_type",
    "hypervisor_version",
    "host_ip",
    "service",
    "state",
    "status",
    "uptime",
}
SERVICE_21 = {"id", "binary", "host", "zone", "status", "state", "updated_at", "disabled_reason"}
LIMITS_21 = {
    "maxImageMeta",
    "maxPersonality",
    "maxPersonalitySize",
    "maxSecurityGroupRules",
    "maxSecurityGroups",
    "maxServerGroupMembers",
    "maxServerGroups",
    "maxServerMeta",
    "maxTotalCores",
    "maxTotalFloatingIps",
    "maxTotalInstances",
    "maxTotalKeypairs",
    "maxTotalRAMSize",
    "totalCoresUsed",
    "totalFloatingIpsUsed",
    "totalInstancesUsed",
    "totalRAMUsed",
    "totalSecurityGroupsUsed",
    "totalServerGroupsUsed",
}
QUOTA_21 = {
    "id",
    "instances",
    "cores",
    "ram",
    "floating_ips",
    "fixed_ips",
    "metadata_items",
    "key_pairs",
    "security_groups",
    "security_group_rules",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "server_groups",
    "server_group_members",
}
QUOTA_236 = QUOTA_21 - {"floating_ips", "fixed_ips", "security_groups", "security_group_rules"}
QUOTA_257 = QUOTA_236 - {
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
}


async def add_node(
    controller: Controller, host: str, *, up: bool = True, zone: str = "nova"
) -> int:
    """A compute_nodes row as an agent would register it (heartbeat in the future = up)."""
    assert controller.store is not None
    beat = iso(now_utc() + timedelta(hours=1)) if up else None
    return await hosts.add_node(
        controller.store,
        {
            "host": host,
            "hypervisor_hostname": host + ".lab",
            "hypervisor_type": "QEMU",
            "hypervisor_version": 8002000,
            "cpu_info": dumps({"arch": "x86_64", "model": "host"}),
            "host_ip": "10.0.0.5",
            "vcpus": 8,
            "memory_mb": 16384,
            "local_gb": 100,
            "zone": zone,
            "driver": "fake",
            "connected": int(up),
            "last_heartbeat": beat,
            "created_at": now_iso(),
            "updated_at": now_iso(),
        },
    )


async def add_instance(
    controller: Controller,
    project_id: str,
    user_id: str,
    host: str,
    vcpus: int = 2,
    ram: int = 512,
    disk: int = 1,
) -> str:
    assert controller.store is not None
    inst = str(uuid.uuid4())
    flavor = {
        "id": "x",
        "name": "x",
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "ephemeral": 0,
        "swap": 0,
        "extra_specs": {},
    }
    now = now_iso()
    await instances.create(
        controller.store,
        {
            "uuid": inst,
            "name": "vm",
            "hostname": "vm",
            "project_id": project_id,
            "user_id": user_id,
            "image_ref": "img",
            "flavor_id": "x",
            "flavor": flavor,
            "vm_state": "active",
            "host": host,
            "mac_address": "fa:16:3e:00:00:01",
            "reservation_id": "r-1",
            "created_at": now,
            "updated_at": now,
        },
    )
    await allocations.claim(controller.store, inst, host, vcpus, ram, disk)
    return inst


# ----------------------------------------------------------------- services


async def test_services(controller: Controller, api: ApiClient) -> None:
    await add_node(controller, "cn1")
    await add_node(controller, "cn2", up=False)
    status, body, _ = await api.get(C + "/os-services")
    assert status == 200
    rows = body["services"]
    assert [r["binary"] for r in rows] == [
        "nova-conductor",
        "nova-scheduler",
        "nova-compute",
        "nova-compute",
    ]
    assert all(set(r) == SERVICE_21 for r in rows)
    assert rows[0]["zone"] == "internal" and rows[0]["state"] == "up"
    cn1, cn2 = rows[2], rows[3]
    assert isinstance(cn1["id"], int) and cn1["host"] == "cn1" and cn1["zone"] == "nova"
    assert cn1["state"] == "up" and cn1["status"] == "enabled"
    assert cn2["state"] == "down"
    _, body, _ = await api.get(C + "/os-services?binary=nova-compute&host=cn2", version="2.11")
    assert len(body["services"]) == 1
    assert set(body["services"][0]) == SERVICE_21 | {"forced_down"}
    _, body, _ = await api.get(C + "/os-services", version="2.69")
    assert str(uuid.UUID(body["services"][2]["id"])) == body["services"][2]["id"]


async def test_service_update(
    controller: Controller, api: ApiClient, member_api: ApiClient
) -> None:
    await add_node(controller, "cn1")
    _, body, _ = await api.get(C + "/os-services?binary=nova-compute", version="2.53")
    sid = body["services"][0]["id"]
    status, body, _ = await api.put(
        f"{C}/os-services/{sid}",
        version="2.53",
        json={"status": "disabled", "disabled_reason": "maint"},
    )
    assert status == 200, body
    assert body["service"]["status"] == "disabled"
    assert body["service"]["disabled_reason"] == "maint"
    assert set(body["service"]) == SERVICE_21 | {"forced_down"}
    node = await hosts.get_node(controller.store, "cn1")
    assert node is not None
    assert node["disabled"] == 1 and node["disabled_reason"] == "maint"
    status, body, _ = await api.put(
        f"{C}/os-services/{sid}", version="2.53", json={"status": "enabled"}
    )
    assert status == 200 and body["service"]["disabled_reason"] is None
    status, body, _ = await api.put(
        f"{C}/os-services/{sid}", version="2.53", json={"forced_down": True}
    )
    assert status == 200 and body["service"]["state"] == "down"
    assert body["service"]["forced_down"] is True
    assert (await hosts.get_node(controller.store, "cn1") or {})["forced_down"] == 1
    for bad in ({}, {"status": "enabled", "disabled_reason": "x"}, {"status": "weird"}):
        status, _, _ = await api.put(f"{C}/os-services/{sid}", version="2.53", json=bad)
        assert status == 400, bad
    status, _, _ = await api.put(
        f"{C}/os-services/not-a-uuid", version="2.53", json={"status": "enabled"}
    )
    assert status == 400
    status, _, _ = await api.put(
        f"{C}/os-services/{uuid.uuid4()}", version="2.53", json={"status": "enabled"}
    )
    assert status == 404
    # legacy actions below 2.53
    status, body, _ = await api.put(
        C + "/os-services/disable", json={"host": "cn1", "binary": "nova-compute"}
    )
    assert status == 200
    assert body == {"service": {"host": "cn1", "binary": "nova-compute", "status": "disabled"}}
    status, body, _ = await api.put(
        C + "/os-services/enable", json={"host": "cn1", "binary": "nova-compute"}
    )
    assert status == 200 and body["service"]["status"] == "enabled"
    status, _, _ = await member_api.put(
        f"{C}/os-services/{sid}", version="2.53", json={"status": "disabled"}
    )
    assert status == 403
    status, _, _ = await member_api.get(C + "/os-services")
    assert status == 403
    status, _, _ = await api.delete(f"{C}/os-services/{sid}", version="2.53")
    assert status == 204
    assert await hosts.nodes_by_id(controller.store) == []


async def _statements(controller: Controller, api: ApiClient, path: str) -> int:
    """How many statements the store ran while answering GET `path`."""
    store = controller.store
    assert store is not None
    count = 0
    run = store._run

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        return await run(*args, **kwargs)

    store._run = counting  # type: ignore[method-assign]
    try:
        status, _, _ = await api.get(C + path)
    finally:
        del store._run
    assert status == 200
    return count


async def test_services_with_many_hosts(controller: Controller, api: ApiClient) -> None:
    """50 hosts: every one listed, in id order, with its own state; os-services and
    os-hypervisors/detail cost as many statements for 50 hosts as for one."""
    await add_node(controller, "cn00", up=False)
    await add_instance(controller, api.project_id, api.user_id, "cn00")
    paths = ("/os-services", "/os-hypervisors/detail", "/os-hypervisors/statistics")
    for path in paths:
        await api.get(C + path)  # warm (token cache)
    one_host = [await _statements(controller, api, path) for path in paths]
    for n in range(1, 50):
        await add_node(controller, f"cn{n:02d}", up=n % 5 != 0, zone="az2" if n % 2 else "nova")
    await api.put(C + "/os-services/disable", json={"host": "cn07", "binary": "nova-compute"})
    _, body, _ = await api.get(C + "/os-services?binary=nova-compute", version="2.11")
    rows = body["services"]
    assert [r["host"] for r in rows] == [f"cn{n:02d}" for n in range(50)]
    assert [r["state"] for r in rows] == ["down" if n % 5 == 0 else "up" for n in range(50)]
    assert [r["zone"] for r in rows] == ["az2" if n % 2 else "nova" for n in range(50)]
    assert [r["status"] for r in rows].count("disabled") == 1
    assert rows[7]["status"] == "disabled"
    assert len({r["id"] for r in rows}) == 50
    assert not any(r["forced_down"] for r in rows)
    assert [await _statements(controller, api, path) for path in paths] == one_host
    await add_instance(controller, api.project_id, api.user_id, "cn03", vcpus=2, ram=512)
    await add_instance(controller, api.project_id, api.user_id, "cn03", vcpus=1, ram=256)
    await add_instance(controller, api.project_id, api.user_id, "cn41", vcpus=4, ram=1024)
    _, body, _ = await api.get(C + "/os-hypervisors/detail")
    hyps = {h["service"]["host"]: h for h in body["hypervisors"]}
    assert len(hyps) == 50
    assert (hyps["cn03"]["running_vms"], hyps["cn03"]["vcpus_used"]) == (2, 3)
    assert hyps["cn03"]["memory_mb_used"] == 768 and hyps["cn41"]["vcpus_used"] == 4
    assert sum(h["running_vms"] for h in hyps.values()) == 4


# ----------------------------------------------------------------- hypervisors


async def test_hypervisors(controller: Controller, api: ApiClient) -> None:
    node_id = await add_node(controller, "cn1")
    inst = await add_instance(controller, api.project_id, api.user_id, "cn1")
    status, body, _ = await api.get(C + "/os-hypervisors")
    assert status == 200
    assert body == {
        "hypervisors": [
            {"id": node_id, "hypervisor_hostname": "cn1.lab", "state": "up", "status": "enabled"}
        ]
    }
    _, body, _ = await api.get(C + "/os-hypervisors/detail")
    hyp = body["hypervisors"][0]
    assert set(hyp) == HYP_DETAIL_21
    assert isinstance(hyp["cpu_info"], str)
    assert hyp["vcpus_used"] == 2 and hyp["memory_mb_used"] == 512 and hyp["running_vms"] == 1
    assert hyp["free_ram_mb"] == 16384 - 512 and hyp["local_gb_used"] == 1
    assert set(hyp["service"]) == {"host", "id", "disabled_reason"}
    assert hyp["service"]["host"] == "cn1"
    _, body, _ = await api.get(f"{C}/os-hypervisors/{node_id}", version="2.28")
    assert body["hypervisor"]["cpu_info"] == {"arch": "x86_64", "model": "host"}
    _, body, _ = await api.get(C + "/os-hypervisors/detail", version="2.53")
    hyp = body["hypervisors"][0]
    assert set(hyp) == HYP_DETAIL_21 and str(uuid.UUID(hyp["id"])) == hyp["id"]
    hid = hyp["id"]
    _, body, _ = await api.get(C + "/os-hypervisors/detail", version="2.88")
    assert set(body["hypervisors"][0]) == HYP_DETAIL_288
    _, body, _ = await api.get(f"{C}/os-hypervisors/{hid}?with_servers=true", version="2.88")
    assert set(body["hypervisor"]) == HYP_DETAIL_288 | {"servers"}
    assert body["hypervisor"]["servers"][0]["uuid"] == inst
    _, body, _ = await api.get(C + "/os-hypervisors?hypervisor_hostname_pattern=cn", version="2.53")
    assert len(body["hypervisors"]) == 1
    status, _, _ = await api.get(
        C + "/os-hypervisors?hypervisor_hostname_pattern=zz", version="2.53"
    )
    assert status == 404
    status, _, _ = await api.get(f"{C}/os-hypervisors/{node_id}", version="2.53")
    assert status == 400
    status, _, _ = await api.get(f"{C}/os-hypervisors/{uuid.uuid4()}", version="2.53")
    assert status == 404
    status, _, _ = await api.get(C + "/os-hypervisors/999")
    assert status == 404
    # statistics / uptime / search / servers: old microversions only
    status, body, _ = await api.get(C + "/os-hypervisors/statistics")
    assert status == 200
    stats = body["hypervisor_statistics"]
    assert stats["count"] == 1 and stats["vcpus"] == 8 and stats["running_vms"] == 1
    status, body, _ = await api.get(f"{C}/os-hypervisors/{node_id}/uptime")
    assert status == 200 and " up " in body["hypervisor"]["uptime"]
    status, body, _ = await api.get(C + "/os-hypervisors/cn1/search")
    assert status == 200 and body["hypervisors"][0]["id"] == node_id
    status, body, _ = await api.get(C + "/os-hypervisors/cn1/servers")
    assert body["hypervisors"][0]["servers"][0]["uuid"] == inst
    status, _, _ = await api.get(C + "/os-hypervisors/statistics", version="2.88")
    assert status == 404


async def test_hypervisors_admin_only(member_api: ApiClient) -> None:
    for path in ("/os-hypervisors", "/os-hypervisors/detail", "/os-hypervisors/statistics"):
        status, body, _ = await member_api.get(C + path)
        assert status == 403, path
        assert body["forbidden"]["code"] == 403


# ----------------------------------------------------------------- availability zones


async def test_availability_zones(
    controller: Controller, api: ApiClient, member_api: ApiClient
) -> None:
    await add_node(controller, "cn1")
    await add_node(controller, "cn2", zone="az2")
    await hosts.set_disabled(controller.store, "cn2", True, None, now_iso())
    status, body, _ = await member_api.get(C + "/os-availability-zone")
    assert status == 200
    assert body == {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None},
            {"zoneName": "az2", "zoneState": {"available": False}, "hosts": None},
        ]
    }
    status, _, _ = await member_api.get(C + "/os-availability-zone/detail")
    assert status == 403
    status, body, _ = await api.get(C + "/os-availability-zone/detail")
    assert status == 200
    zones = {z["zoneName"]: z for z in body["availabilityZoneInfo"]}
    assert set(zones) == {"internal", "nova", "az2"}
    internal_hosts = zones["internal"]["hosts"]
    assert set(next(iter(internal_hosts.values()))) == {"nova-conductor", "nova-scheduler"}
    compute = zones["nova"]["hosts"]["cn1"]["nova-compute"]
    assert compute["available"] is True and compute["active"] is True
    assert set(compute) == {"available", "active", "updated_at"}
    assert zones["az2"]["hosts"] is None


# ----------------------------------------------------------------- limits and quotas


async def test_limits_per_microversion(controller: Controller, api: ApiClient) -> None:
    await add_node(controller, "cn1")
    await add_instance(controller, api.project_id, api.user_id, "cn1", vcpus=2, ram=512)
    status, body, _ = await api.get(C + "/limits?reserved=False")
    assert status == 200
    assert body["limits"]["rate"] == []
    absolute = body["limits"]["absolute"]
    assert set(absolute) == LIMITS_21
    assert absolute["maxTotalInstances"] == 10 and absolute["totalInstancesUsed"] == 1
    assert absolute["totalCoresUsed"] == 2 and absolute["totalRAMUsed"] == 512
    assert absolute["maxTotalKeypairs"] == 100 and absolute["maxServerMeta"] == 128
    _, body, _ = await api.get(C + "/limits", version="2.36")
    dropped_236 = {
        "maxSecurityGroupRules",
        "maxSecurityGroups",
        "maxTotalFloatingIps",
        "totalFloatingIpsUsed",
        "totalSecurityGroupsUsed",
    }
    assert set(body["limits"]["absolute"]) == LIMITS_21 - dropped_236
    _, body, _ = await api.get(C + "/limits", version="2.39")
    assert set(body["limits"]["absolute"]) == LIMITS_21 - dropped_236 - {"maxImageMeta"}
    _, body, _ = await api.get(C + "/limits", version="2.57")
    assert set(body["limits"]["absolute"]) == (
        LIMITS_21 - dropped_236 - {"maxImageMeta", "maxPersonality", "maxPersonalitySize"}
    )


async def test_limits_other_project(api: ApiClient, member_api: ApiClient) -> None:
    status, body, _ = await api.get(C + f"/limits?tenant_id={member_api.project_id}")
    assert status == 200
    status, _, _ = await member_api.get(C + f"/limits?tenant_id={api.project_id}")
    assert status == 403
    status, _, _ = await member_api.get(C + "/limits")
    assert status == 200


async def test_quota_sets(controller: Controller, api: ApiClient, member_api: ApiClient) -> None:
    pid = member_api.project_id
    qs = f"{C}/os-quota-sets/{pid}"
    status, body, _ = await api.get(qs)
    assert status == 200 and set(body["quota_set"]) == QUOTA_21
    assert body["quota_set"]["id"] == pid and body["quota_set"]["instances"] == 10
    _, body, _ = await api.get(qs, version="2.36")
    assert set(body["quota_set"]) == QUOTA_236
    _, body, _ = await api.get(qs, version="2.56")
    assert set(body["quota_set"]) == QUOTA_236
    _, body, _ = await api.get(qs, version="2.57")
    assert set(body["quota_set"]) == QUOTA_257
    status, body, _ = await api.get(qs + "/defaults")
    assert status == 200 and body["quota_set"]["cores"] == 20
    # update (admin only)
    status, body, _ = await api.put(qs, json={"quota_set": {"instances": 2, "cores": "4"}})
    assert status == 200, body
    assert set(body["quota_set"]) == QUOTA_21 - {"id"}
    assert body["quota_set"]["instances"] == 2 and body["quota_set"]["cores"] == 4
    status, _, _ = await member_api.put(qs, json={"quota_set": {"instances": 50}})
    assert status == 403
    for bad in ({"bogus": 1}, {"instances": -2}, {"instances": "x"}):
        status, _, _ = await api.put(qs, json={"quota_set": bad})
        assert status == 400, bad
    status, _, _ = await api.put(qs, json={"quota_set": {"floating_ips": 1}}, version="2.36")
    assert status == 400
    # member sees its own, not others'
    status, body, _ = await member_api.get(qs)
    assert status == 200 and body["quota_set"]["instances"] == 2
    status, _, _ = await member_api.get(f"{C}/os-quota-sets/{api.project_id}")
    assert status == 403
    # usage, detail, and the limit/usage check
    await add_node(controller, "cn1")
    await add_instance(controller, pid, member_api.user_id, "cn1", vcpus=2, ram=512)
    status, body, _ = await member_api.get(qs + "/detail")
    assert status == 200
    assert body["quota_set"]["instances"] == {"in_use": 1, "limit": 2, "reserved": 0}
    assert body["quota_set"]["cores"] == {"in_use": 2, "limit": 4, "reserved": 0}
    status, err, _ = await api.put(qs, json={"quota_set": {"cores": 1}})
    assert status == 400 and "already used" in err["badRequest"]["message"]
    status, _, _ = await api.put(qs, json={"quota_set": {"cores": 1, "force": True}})
    assert status == 200
    status, _, _ = await api.delete(qs)
    assert status == 202
    _, body, _ = await api.get(qs)
    assert body["quota_set"]["cores"] == 20


async def test_quota_module(controller: Controller, api: ApiClient) -> None:
    store = controller.store
    assert store is not None
    pid = api.project_id
    assert (await quota.get_limits(store, pid))["instances"] == 10
    for _ in range(9):
        await add_instance(controller, pid, api.user_id, "cn1", vcpus=1, ram=64)
    usage = await quota.get_usage(store, pid)
    assert usage["instances"] == 9 and usage["cores"] == 9 and usage["ram"] == 576
    await quota.check_instance_quota(store, pid, 1, 1, 64)
    with pytest.raises(QuotaExceeded) as exc:
        await quota.check_instance_quota(store, pid, 3, 1, 64)
    assert exc.value.message == (
        "Quota exceeded for instances: Requested 3, but already used 9 of 10 instances"
    )
    with pytest.raises(QuotaExceeded) as exc:
        await quota.check_instance_quota(store, pid, 1, 16, 64)
    assert "cores" in exc.value.message
    assert await quota.allowed_instances(store, pid, 5, 1, 64) == 1
    await quota.set_limits(store, pid, {"instances": -1, "cores": -1})
    await quota.check_instance_quota(store, pid, 100, 1, 64)
    with pytest.raises(QuotaExceeded) as exc:
        await quota.check_instance_quota(store, pid, 1000, 1, 64)
    assert exc.value.message.startswith("Quota exceeded for ram")


# ----------------------------------------------------------------- misc


async def test_extensions_networks_pools(api: ApiClient, member_api: ApiClient) -> None:
    status, body, _ = await api.get(C + "/extensions")
    assert status == 200
    ext = body["extensions"][0]
    assert set(ext) == {"name", "alias", "namespace", "description", "links", "updated"}
    status, body, _ = await api.get(C + "/extensions/os-keypairs")
    assert status == 200 and body["extension"]["name"] == "Keypairs"
    status, _, _ = await api.get(C + "/extensions/nope")
    assert status == 404
    status, body, _ = await member_api.get(C + "/os-networks", version="2.1")
    assert status == 200
    net = body["networks"][0]
    assert net["id"] == PRIVATE_NETWORK_ID and net["label"] == "private"
    assert PRIVATE_NETWORK_ID == str(uuid.uuid5(uuid.NAMESPACE_DNS, "mininova-private"))
    assert "project_id" not in net
    _, body, _ = await api.get(C + "/os-networks")
    assert "project_id" in body["networks"][0]
    status, body, _ = await api.get(f"{C}/os-networks/{PRIVATE_NETWORK_ID}")
    assert status == 200 and body["network"]["label"] == "private"
    status, _, _ = await api.get(C + "/os-networks/private")
    assert status == 404
    status, _, _ = await api.get(C + "/os-networks", version="2.36")
    assert status == 404
    status, body, _ = await api.get(C + "/os-floating-ip-pools")
    assert status == 200 and body == {"floating_ip_pools": []}


# ----------------------------------------------------------------- the real CLI


@pytest.mark.first_backend_only
async def test_openstack_cli_infra(controller: Controller, api: ApiClient) -> None:
    await add_node(controller, "cn1")

    rc, out, err = await run_openstack(controller, "hypervisor", "list", "-f", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert rows[0]["Hypervisor Hostname"] == "cn1.lab" and rows[0]["State"] == "up"

    rc, out, err = await run_openstack(controller, "compute", "service", "list", "-f", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert {r["Binary"] for r in rows} == {"nova-conductor", "nova-scheduler", "nova-compute"}
    compute = next(r for r in rows if r["Binary"] == "nova-compute")
    assert compute["Host"] == "cn1" and compute["State"] == "up"

    rc, out, err = await run_openstack(controller, "availability", "zone", "list", "-f", "json")
    assert rc == 0, err
    zones = {r["Zone Name"]: r["Zone Status"] for r in json.loads(out)}
    assert zones["nova"] == "available"

    rc, out, err = await run_openstack(controller, "limits", "show", "--absolute", "-f", "json")
    assert rc == 0, err
    limits = {r["Name"]: r["Value"] for r in json.loads(out)}
    assert limits["max_total_instances"] == 10 and limits["instances_used"] == 0

    rc, out, err = await run_openstack(controller, "quota", "show", "-f", "json")
    assert rc == 0, err
    quotas = {r["Resource"]: r["Limit"] for r in json.loads(out)}
    assert quotas["instances"] == 10 and quotas["cores"] == 20 and quotas["key-pairs"] == 100


async def test_host_reads_down_once_heartbeats_stop(
    controller: Controller, api: ApiClient, fake_clock: FakeClock
) -> None:
    """Liveness on the fake clock: the heartbeat window passes without any sleeping."""
    await add_node(controller, "cn1")
    assert controller.store is not None
    await hosts.record_heartbeats(controller.store, ["cn1"], now_iso())

    async def state() -> str:
        _, body, _ = await api.get(C + "/os-services?binary=nova-compute&host=cn1")
        return body["services"][0]["state"]

    config = controller.config
    fake_clock.advance(config.heartbeat_interval * config.missed_heartbeats_down)
    assert await state() == "up"  # the last heartbeat is exactly at the limit
    fake_clock.advance(0.01)
    assert await state() == "down"
