"""Remote groups' members kept between push rounds (`RemoteGroupReads.refresh`): after any
sequence of changes to instances (addresses, groups, deletion, new ones), refreshing with the
changed instances holds what a fresh read of the groups lists, in the same order."""

from __future__ import annotations

import random
import uuid as uuidlib
from typing import Any

from mininova import instance_states as st
from mininova.network.hoststate import RemoteGroupReads
from mininova.store import Store
from mininova.store import instances as db
from mininova.store import security_groups as groups_repo
from mininova.timeutil import now_iso
from tests.conductor.test_conductor_fake_hub import FLAVOR, IMAGE

DEFAULT_P1, WEB_P1, DEFAULT_P2 = "g-default-p1", "g-web-p1", "default:p2"  # p2: no group row
GROUPS = [DEFAULT_P1, WEB_P1, DEFAULT_P2]


def _addresses(rng: random.Random) -> list[dict[str, Any]]:
    ips = [f"10.0.{rng.randrange(4)}.{rng.randrange(2, 40)}" for _ in range(rng.choice((0, 1, 2)))]
    return [{"version": 4, "addr": ip, "mac": "fa:16:3e:00:00:01"} for ip in ips]


async def _new_instance(store: Store, rng: random.Random) -> str:
    uuid = str(uuidlib.uuid4())
    project = rng.choice(("p1", "p2"))
    await db.create(
        store,
        {
            "uuid": uuid,
            "name": "vm",
            "hostname": "vm",
            "project_id": project,
            "user_id": "u1",
            "image_ref": IMAGE,
            "flavor_id": "1",
            "flavor": FLAVOR,
            "vm_state": st.ACTIVE,
            "task_state": None,
            "host": rng.choice(("n1", "n2")),
            "mac_address": "fa:16:3e:00:00:01",
            "reservation_id": "r-1",
            "addresses": _addresses(rng),
            "created_at": now_iso(),
            "updated_at": now_iso(),
        },
    )
    if project == "p1" and rng.random() < 0.6:
        await groups_repo.add_member(store, uuid, rng.choice((DEFAULT_P1, WEB_P1)))
    return uuid


async def _change(store: Store, rng: random.Random, live: list[str]) -> str:
    """One random change; the instance it concerns."""
    kind = rng.choice(("addresses", "join", "leave", "delete", "new"))
    if kind == "new" or not live:
        uuid = await _new_instance(store, rng)
        live.append(uuid)
        return uuid
    uuid = rng.choice(live)
    if kind == "addresses":
        await db.update(store, uuid, addresses=_addresses(rng))
    elif kind == "join":
        row = await db.get(store, uuid)
        assert row is not None
        if row["project_id"] == "p1":
            group = rng.choice((DEFAULT_P1, WEB_P1))
            if uuid not in (await groups_repo.members_of_groups(store, [group]))[group]:
                await groups_repo.add_member(store, uuid, group)
    elif kind == "leave":
        for group in (DEFAULT_P1, WEB_P1):
            await groups_repo.remove_member(store, uuid, group)
    else:
        await db.mark_deleted(store, uuid, st.DELETED)
        live.remove(uuid)
    return uuid


async def test_refreshed_groups_list_what_a_fresh_read_lists(store: Store) -> None:
    for gid, name, is_default in ((DEFAULT_P1, "default", 1), (WEB_P1, "web", 0)):
        await groups_repo.insert_group(
            store,
            {
                "id": gid,
                "project_id": "p1",
                "name": name,
                "is_default": is_default,
                "created_at": now_iso(),
                "updated_at": now_iso(),
            },
        )
    rng = random.Random(20261204)
    live = [await _new_instance(store, rng) for _ in range(20)]
    kept = RemoteGroupReads()
    await kept.read(store, GROUPS)
    assert any(kept.ips[g] for g in GROUPS)

    for _round in range(60):
        changed = {await _change(store, rng, live) for _ in range(rng.randrange(1, 5))}
        before = {g: list(kept.ips[g]) for g in GROUPS}
        touched = await kept.refresh(store, sorted(changed))
        fresh = await RemoteGroupReads().read(store, GROUPS)
        assert {g: kept.ips[g] for g in GROUPS} == fresh
        assert touched >= {g for g in GROUPS if before[g] != fresh[g]}

    # Nothing named, nothing read: a change the caller does not name is not seen.
    uuid = await _new_instance(store, rng)
    await db.update(store, uuid, addresses=[{"version": 4, "addr": "10.9.9.9", "mac": "m"}])
    assert await kept.refresh(store, []) == set()
    assert all("10.9.9.9" not in ips for ips in kept.ips.values())
    kept.forget()
    await kept.read(store, GROUPS)
    assert any("10.9.9.9" in ips for ips in kept.ips.values())
