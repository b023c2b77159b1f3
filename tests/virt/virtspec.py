"""InstanceSpec factory shared by the libvirt driver tests."""

from __future__ import annotations

import os
import uuid

from mininova.virt.driver import FlavorSpec, ImageSpec, InstanceSpec

NASTY = "<a&b'\"/>"


def make_spec(**overrides) -> InstanceSpec:
    """An InstanceSpec with a hostile display name and one SSH key."""
    values = dict(
        uuid=str(uuid.uuid4()),
        name=NASTY,
        hostname="vm-test-1",
        domain_name="instance-0000002a",
        project_id="p" * 32,
        user_id="u" * 32,
        flavor=FlavorSpec(id="1", name="m1.tiny", vcpus=1, ram_mb=128, disk_gb=1),
        image=ImageSpec(
            id="img-1",
            name="tiny",
            disk_format="qcow2",
            size=0,
            checksum="",
            url="http://127.0.0.1:1/none",
            capability="tok",
        ),
        mac_address="fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3)),
        key_name="k1",
        public_keys={"k1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test@host"},
        metadata={"role": NASTY},
    )
    values.update(overrides)
    return InstanceSpec(**values)
