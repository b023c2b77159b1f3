"""The rebuild server action against an in-process controller and one in-process fake agent:
the 202 view per microversion, what changes on the server, landing states (a stopped server
stays stopped), the failure path (ERROR with a fault, then a rebuild out of ERROR), the 400s,
409s and 404 Nova answers, and the instance action with its event."""

from __future__ import annotations

from typing import Any

from mininova.virt.fake import FakeDriver
from tests.conftest import ApiClient

SERVERS = "/compute/v2.1/servers"


async def _image(api: ApiClient, name: str, **fields: Any) -> str:
    status, image, _ = await api.post(
        "/image/v2/images",
        json={"name": name, "disk_format": "qcow2", "container_format": "bare", **fields},
    )
    assert status == 201, image
    status, _, _ = await api.put(
        f"/image/v2/images/{image['id']}/file",
        data=b"QFI\xfb" + b"\0" * 1024,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert status == 204
    return str(image["id"])


async def _boot(api: ApiClient, image: str, name: str = "vm1", **server: Any) -> dict:
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}}
    body["server"].update(server)
    status, resp, _ = await api.post(SERVERS, json=body, version="2.100")
    assert status == 202, resp
    return await api.wait_server(resp["server"]["id"], "ACTIVE")


async def _rebuild(
    api: ApiClient, uuid: str, version: str | None = None, **args: Any
) -> tuple[int, Any]:
    status, body, _ = await api.post(
        f"{SERVERS}/{uuid}/action", json={"rebuild": args}, version=version
    )
    return status, body


async def _console(api: ApiClient, uuid: str) -> list[str]:
    status, body, _ = await api.post(f"{SERVERS}/{uuid}/action", json={"os-getConsoleOutput": {}})
    assert status == 200, body
    return str(body["output"]).splitlines()


async def test_rebuild_to_another_image_with_new_name_and_metadata(
    api: ApiClient, fake_driver: FakeDriver
) -> None:
    first = await _image(api, "first")
    second = await _image(api, "second")
    server = await _boot(api, first, metadata={"old": "1"})
    uuid = server["id"]
    old = fake_driver._guests[uuid].spec
    old_identity = (old.mac_address, old.domain_name)

    status, body = await _rebuild(
        api, uuid, imageRef=second, name="vm1-new", metadata={"k": "v"}, adminPass="pw-123"
    )
    assert status == 202, body
    view = body["server"]
    # 2.1: the narrower view of PUT /servers/{id}, plus adminPass
    assert view["id"] == uuid and view["name"] == "vm1-new"
    assert view["image"]["id"] == second and view["metadata"] == {"k": "v"}
    assert view["adminPass"] == "pw-123"
    assert view["status"] in ("REBUILD", "ACTIVE")
    assert not [k for k in view if k.startswith("OS-EXT-")]
    assert "key_name" not in view and "security_groups" not in view
    assert {"id", "name", "status", "image", "flavor", "addresses", "links"} <= set(view)

    done = await api.wait_server(uuid, "ACTIVE")
    assert done["OS-EXT-STS:task_state"] is None and done["image"]["id"] == second
    assert done["name"] == "vm1-new" and done["metadata"] == {"k": "v"}
    assert done["OS-EXT-SRV-ATTR:hostname"] == server["OS-EXT-SRV-ATTR:hostname"] == "vm1"
    assert done["OS-EXT-SRV-ATTR:host"] == "node1"
    assert done["addresses"] == server["addresses"]

    lines = await _console(api, uuid)
    assert "image=first" in lines and "image=second" in lines
    assert lines.index("image=second") > lines.index("image=first")
    assert lines.count("hostname=vm1") == 2  # the same hostname after the rebuild
    guest = fake_driver._guests[uuid].spec
    assert guest.image.id == second and guest.metadata == {"k": "v"}
    assert (guest.mac_address, guest.domain_name) == old_identity

    _, actions, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions")
    assert [a["action"] for a in actions["instanceActions"]] == ["rebuild", "create"]
    request_id = actions["instanceActions"][0]["request_id"]
    _, action, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions/{request_id}")
    events = action["instanceAction"]["events"]
    assert [(e["event"], e["result"]) for e in events] == [("compute_rebuild_instance", "Success")]


async def test_rebuild_answers_the_full_view_from_2_75_and_takes_newer_fields(
    api: ApiClient, fake_driver: FakeDriver
) -> None:
    image = await _image(api, "img")
    status, key, _ = await api.post(
        "/compute/v2.1/os-keypairs", json={"keypair": {"name": "k1"}}, version="2.2"
    )
    assert status == 201, key
    uuid = (await _boot(api, image))["id"]

    # key_name is no rebuild field before 2.54, user_data none before 2.57
    status, body = await _rebuild(api, uuid, "2.53", imageRef=image, key_name="k1")
    assert status == 400 and "key_name" in body["badRequest"]["message"], body
    status, body = await _rebuild(api, uuid, "2.56", imageRef=image, user_data="aGk=")
    assert status == 400, body
    status, body = await _rebuild(api, uuid, "2.89", imageRef=image, hostname="other")
    assert status == 400, body
    status, body = await _rebuild(api, uuid, "2.54", imageRef=image, key_name="nokey")
    assert status == 400 and "nokey" in body["badRequest"]["message"], body
    status, body = await _rebuild(api, uuid, "2.57", imageRef=image, user_data="not base64!")
    assert status == 400, body

    status, body = await _rebuild(
        api,
        uuid,
        "2.90",
        imageRef=image,
        key_name="k1",
        user_data="aGk=",
        description="rebuilt",
        hostname="other-host",
        preserve_ephemeral=True,
    )
    assert status == 202, body
    view = body["server"]
    assert view["key_name"] == "k1" and view["description"] == "rebuilt"
    assert view["OS-EXT-SRV-ATTR:hostname"] == "other-host"
    assert "OS-EXT-STS:task_state" in view and "adminPass" in view
    await api.wait_server(uuid, "ACTIVE")
    spec = fake_driver._guests[uuid].spec
    assert spec.key_name == "k1" and "k1" in spec.public_keys
    assert spec.user_data == "aGk=" and spec.hostname == "other-host"

    # 2.54: key_name null removes the key
    status, body = await _rebuild(api, uuid, "2.54", imageRef=image, key_name=None)
    assert status == 202, body
    await api.wait_server(uuid, "ACTIVE")
    assert fake_driver._guests[uuid].spec.public_keys == {}


async def test_rebuild_of_a_stopped_server_leaves_it_stopped(
    api: ApiClient, fake_driver: FakeDriver
) -> None:
    image = await _image(api, "img")
    uuid = (await _boot(api, image))["id"]
    status, _, _ = await api.post(f"{SERVERS}/{uuid}/action", json={"os-stop": None})
    assert status == 202
    await api.wait_server(uuid, "SHUTOFF")

    status, body = await _rebuild(api, uuid, imageRef=image)
    assert status == 202, body
    done = await api.wait_server(uuid, "SHUTOFF")
    assert done["OS-EXT-STS:task_state"] is None and done["OS-EXT-STS:power_state"] == 4
    lines = await _console(api, uuid)
    assert "[fake] rebuild from image img" in lines


async def test_failed_rebuild_is_error_with_fault_then_rebuild_from_error(
    api: ApiClient, fake_driver: FakeDriver
) -> None:
    good = await _image(api, "good")
    bad = await _image(api, "fail-rebuild")
    uuid = (await _boot(api, good))["id"]

    status, body = await _rebuild(api, uuid, imageRef=bad)
    assert status == 202, body
    failed = await api.wait_server(uuid, "ERROR")
    assert "fake rebuild failure requested" in failed["fault"]["message"]
    _, actions, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions")
    request_id = actions["instanceActions"][0]["request_id"]
    _, action, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions/{request_id}")
    (event,) = action["instanceAction"]["events"]
    assert (event["event"], event["result"]) == ("compute_rebuild_instance", "Error")

    # Nova allows a rebuild out of ERROR: it lands ACTIVE, without the fault
    status, body = await _rebuild(api, uuid, imageRef=good)
    assert status == 202, body
    done = await api.wait_server(uuid, "ACTIVE")
    assert done["image"]["id"] == good and "fault" not in done


async def test_rebuild_refusals(
    api: ApiClient, member_api: ApiClient, fake_driver: FakeDriver
) -> None:
    image = await _image(api, "img", visibility="public")
    big_disk = await _image(api, "big-disk", min_disk=50)
    big_ram = await _image(api, "big-ram", min_ram=4096)
    uuid = (await _boot(api, image))["id"]

    status, body = await _rebuild(api, uuid, imageRef="0b5d2c2a-0000-4000-8000-000000000000")
    assert status == 400 and body["badRequest"]["message"] == "Cannot find image for rebuild"
    status, body = await _rebuild(api, uuid, imageRef=big_disk)
    assert status == 400, body
    assert body["badRequest"]["message"] == (
        "Flavor's disk is smaller than the minimum size specified in image metadata. "
        f"Flavor disk is {1024**3} bytes, minimum size is {50 * 1024**3} bytes."
    )
    status, body = await _rebuild(api, uuid, imageRef=big_ram)
    assert status == 400, body
    assert body["badRequest"]["message"] == "Flavor's memory is too small for requested image."
    status, body = await _rebuild(api, uuid)  # no imageRef
    assert status == 400 and "imageRef" in body["badRequest"]["message"], body
    status, body = await _rebuild(api, uuid, imageRef=image, bogus=1)
    assert status == 400, body
    status, body = await _rebuild(api, uuid, imageRef=image, accessIPv4="nope")
    assert status == 400, body

    # another project's server does not exist for the member
    status, body = await _rebuild(member_api, uuid, imageRef=image)
    assert status == 404, body

    # paused: 409
    status, _, _ = await api.post(f"{SERVERS}/{uuid}/action", json={"pause": None})
    assert status == 202
    await api.wait_server(uuid, "PAUSED")
    status, body = await _rebuild(api, uuid, imageRef=image)
    assert status == 409 and "rebuild" in body["conflictingRequest"]["message"], body

    # the member's own locked server: 409
    status, resp, _ = await member_api.post(
        SERVERS,
        json={"server": {"name": "m1", "imageRef": image, "flavorRef": "1", "networks": "none"}},
        version="2.37",
    )
    assert status == 202, resp
    mine = resp["server"]["id"]
    await member_api.wait_server(mine, "ACTIVE")
    status, _, _ = await member_api.post(f"{SERVERS}/{mine}/action", json={"lock": None})
    assert status == 202
    status, body = await _rebuild(member_api, mine, imageRef=image)
    assert status == 409 and "locked" in body["conflictingRequest"]["message"], body

    # a server that never got a host (its build failed) has nothing to rebuild: 409
    status, resp, _ = await api.post(
        SERVERS,
        json={
            "server": {
                "name": "nowhere",
                "imageRef": image,
                "flavorRef": "1",
                "networks": "none",
                "host": "no-such-host",
            }
        },
        version="2.74",
    )
    assert status == 202, resp
    await api.wait_server(resp["server"]["id"], "ERROR")
    status, body = await _rebuild(api, resp["server"]["id"], imageRef=image)
    assert status == 409 and "no host" in body["conflictingRequest"]["message"], body

    # nothing was recorded or changed by the refusals
    _, actions, _ = await api.get(f"{SERVERS}/{uuid}/os-instance-actions")
    assert "rebuild" not in [a["action"] for a in actions["instanceActions"]]
