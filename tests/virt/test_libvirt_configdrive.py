"""Config drive: read the ISO back with pycdlib."""

from __future__ import annotations

import base64
import io
import json

import pycdlib
import pytest
from virtspec import NASTY, make_spec

from mininova.virt.driver import DriverError
from mininova.virt.libvirt.configdrive import build_config_drive


def _read(iso: pycdlib.PyCdlib, path: str) -> bytes:
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, rr_path=path)
    return buf.getvalue()


def test_config_drive_contents(tmp_path):
    spec = make_spec(user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode())
    dest = tmp_path / "disk.config"
    build_config_drive(spec, dest)
    iso = pycdlib.PyCdlib()
    iso.open(str(dest))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "config-2"
        assert iso.has_rock_ridge() and iso.has_joliet()
        meta = json.loads(_read(iso, "/openstack/latest/meta_data.json"))
        assert meta["uuid"] == spec.uuid
        assert meta["name"] == NASTY
        assert meta["hostname"] == "vm-test-1"
        assert meta["launch_index"] == 0
        assert meta["project_id"] == spec.project_id
        assert meta["availability_zone"] == "nova"
        assert meta["meta"] == {"role": NASTY}
        assert meta["public_keys"] == spec.public_keys
        assert meta["keys"] == [{"name": "k1", "type": "ssh", "data": spec.public_keys["k1"]}]
        assert _read(iso, "/openstack/latest/user_data") == b"#!/bin/sh\necho hi\n"
        net = json.loads(_read(iso, "/openstack/latest/network_data.json"))
        assert net["links"][0]["ethernet_mac_address"] == spec.mac_address
        assert net["networks"][0]["type"] == "ipv4_dhcp"
        assert net["services"] == []
        assert json.loads(_read(iso, "/openstack/2012-08-10/meta_data.json"))["uuid"] == spec.uuid
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/openstack/latest/meta_data.json")
        assert json.loads(buf.getvalue())["uuid"] == spec.uuid
    finally:
        iso.close()


def test_no_user_data_file_without_user_data(tmp_path):
    dest = tmp_path / "disk.config"
    build_config_drive(make_spec(), dest)
    iso = pycdlib.PyCdlib()
    iso.open(str(dest))
    try:
        names = [
            c.rock_ridge.name().decode()
            for c in iso.list_children(rr_path="/openstack/latest")
            if c.rock_ridge is not None
        ]
        assert "user_data" not in names and "meta_data.json" in names
    finally:
        iso.close()


def test_bad_user_data_rejected(tmp_path):
    with pytest.raises(DriverError, match="base64"):
        build_config_drive(make_spec(user_data="not base64!!"), tmp_path / "x")
