"""OpenStack config drive: an ISO9660 + Joliet + Rock Ridge volume labelled `config-2`."""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from pathlib import Path

import pycdlib

from mininova.virt.driver import DriverError, InstanceSpec

LABEL = "config-2"
VERSIONS = ("2012-08-10", "latest")


def meta_data(spec: InstanceSpec) -> dict:
    return {
        "uuid": spec.uuid,
        "name": spec.name,
        "hostname": spec.hostname,
        "launch_index": 0,
        "availability_zone": spec.availability_zone,
        "project_id": spec.project_id,
        "meta": dict(spec.metadata),
        "public_keys": dict(spec.public_keys),
        "keys": [{"name": n, "type": "ssh", "data": k} for n, k in spec.public_keys.items()],
        "devices": [],
    }


def network_data(spec: InstanceSpec) -> dict:
    return {
        "links": [
            {
                "id": "tap0",
                "type": "phy",
                "ethernet_mac_address": spec.mac_address,
                "mtu": 1500,
                "vif_id": spec.uuid,
            }
        ],
        "networks": [
            {"id": "network0", "type": "ipv4_dhcp", "link": "tap0", "network_id": "default"}
        ],
        "services": [],
    }


def decode_user_data(user_data: str | None) -> bytes | None:
    if not user_data:
        return None
    try:
        return base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DriverError(f"user_data is not valid base64: {exc}") from exc


def drive_files(spec: InstanceSpec) -> dict[str, bytes]:
    """Relative path -> content of every file on the drive."""
    files: dict[str, bytes] = {}
    user_data = decode_user_data(spec.user_data)
    for version in VERSIONS:
        base = f"openstack/{version}"
        files[f"{base}/meta_data.json"] = json.dumps(meta_data(spec), indent=1).encode()
        files[f"{base}/network_data.json"] = json.dumps(network_data(spec), indent=1).encode()
        files[f"{base}/vendor_data.json"] = b"{}"
        if user_data is not None:
            files[f"{base}/user_data"] = user_data
    return files


def _iso_name(name: str, is_dir: bool) -> str:
    """An ISO9660 level-3 name (d-characters only); Rock Ridge/Joliet carry the real name."""

    def clean(s: str) -> str:
        return re.sub(r"[^A-Z0-9_]", "_", s.upper())

    if is_dir:
        return clean(name)[:31]
    stem, _, ext = name.rpartition(".") if "." in name else (name, "", "")
    return f"{clean(stem)[:24]}.{clean(ext)[:5]};1"


def write_iso(files: dict[str, bytes], dest: Path) -> None:
    """Blocking: write `files` as a config-2 ISO to dest (call in a thread)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL)
    made: set[str] = set()
    try:
        for rel in sorted(files):
            parts = rel.split("/")
            iso_parts: list[str] = []
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                iso_parts.append(_iso_name(part, not last))
                iso_path = "/" + "/".join(iso_parts)
                joliet = "/" + "/".join(parts[: i + 1])
                if last:
                    data = files[rel]
                    iso.add_fp(
                        io.BytesIO(data), len(data), iso_path, rr_name=part, joliet_path=joliet
                    )
                elif iso_path not in made:
                    iso.add_directory(iso_path, rr_name=part, joliet_path=joliet)
                    made.add(iso_path)
        tmp = dest.with_name(dest.name + ".part")
        iso.write(str(tmp))
        tmp.replace(dest)
    finally:
        iso.close()


def build_config_drive(spec: InstanceSpec, dest: Path) -> None:
    """Blocking: build the config drive for spec at dest."""
    write_iso(drive_files(spec), dest)
