#!/usr/bin/env python3
"""libvirt boot latency: POST /servers -> ACTIVE through the full stack vs a bare `virsh create`.

Starts `mininova serve` and one `mininova agent --driver libvirt` (real libvirtd at
qemu:///system, virt_type qemu = TCG) with the helpers of tests/e2e/procs.py, uploads the tiny
guest image (examples/images/out/tiny.qcow2) and boots it:

* full stack: POST /compute/v2.1/servers (m1.micro, admin token, microversion 2.100), then
  GET /servers/{id} every --poll-interval s until ACTIVE. That covers the API, the conductor
  and scheduler, the agent link, the image cache lookup, the qcow2 overlay, the config drive,
  the DHCP reservation and libvirt's defineXML + create.
* reference, same run: `virsh create` of an equivalent transient domain -- the XML mininova
  defined for a guest (same memory, vCPUs, TCG, devices), renamed, with its own qcow2 overlay
  of the same cached base (made before the clock starts), its own copy of the config drive and
  console log -- timed until `virsh domstate` says running.

A warm-up boot (cold image cache: includes the download) is reported apart and gives the
reference its domain XML. Then full-stack and reference boots alternate, N of each, each guest
deleted before the next boot so every boot starts from the same idle host. Prints p50 of each
and the ratio full stack / bare virsh: the control-plane overhead on top of the hypervisor.

    .venv/bin/python bench/libvirt_bench.py [--boots 3] [--poll-interval 0.1] [--keep]

Cleans up its servers, domains, processes and /var/tmp directory also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot_bench import SERVERS, Api, Managed, interruptible  # noqa: E402
from tests.e2e.procs import Agent, Serve, base_env, free_port  # noqa: E402
from tests.libvirt_e2e.host import (  # noqa: E402
    TINY_IMAGE,
    URI,
    domstate,
    host_skip_reason,
    purge_domains,
    virsh,
)

FLAVOR = "2"  # m1.micro: 1 vCPU, 128 MiB (the tiny guest's kernel does not load in 64 MiB)
HOST = "bench-lv"


@dataclass
class LibvirtCloud(Managed):
    """`mininova serve` + one libvirt agent under /var/tmp (QEMU must reach the files)."""

    keep: bool = False
    tmp: Path = field(
        default_factory=lambda: Path(
            tempfile.mkdtemp(prefix="mininova-libvirt-bench-", dir="/var/tmp")
        )
    )
    serve: Serve | None = None
    agent: Agent | None = None
    reference_names: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.tmp.chmod(0o755)
        env = base_env(self.tmp)
        env.update(
            {
                "MININOVA_HEARTBEAT_INTERVAL": "2",
                "MININOVA_AGENT_HEARTBEAT_INTERVAL": "2",
                "MININOVA_MISSED_HEARTBEATS_DOWN": "5",
            }
        )
        self.serve = Serve(self.tmp / "serve", free_port(), env)
        self.serve.start()
        self.agent = Agent(
            self.serve,
            HOST,
            driver="libvirt",
            data_dir=self.tmp / "agent",
            extra_env={"MININOVA_AGENT_VIRT_TYPE": "qemu"},
        )
        self.agent.start()

    @property
    def base_dir(self) -> Path:
        return self.tmp / "agent" / "instances" / "_base"

    def instance_ids(self) -> set[str]:
        assert self.serve is not None
        db = self.serve.data_dir / "mininova.sqlite"
        if not db.exists():
            return set()
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return {row[0] for row in conn.execute("SELECT uuid FROM instances")}

    def stop(self) -> None:
        ids: set[str] = set()
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.stop()
        if self.serve is not None:
            with contextlib.suppress(Exception):
                ids = self.instance_ids()
            with contextlib.suppress(Exception):
                self.serve.stop()
        purge_domains(uuids=ids, names=self.reference_names)
        if self.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- full stack ---------------------------------------------------------------------------------


async def upload_tiny(api: Api) -> str:
    image = await api.call(
        "POST",
        "/image/v2/images",
        (201,),
        json={
            "name": "tiny",
            "disk_format": "qcow2",
            "container_format": "bare",
            "visibility": "public",
        },
    )
    await api.call(
        "PUT",
        f"/image/v2/images/{image['id']}/file",
        (204,),
        data=TINY_IMAGE.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    return image["id"]


async def boot_full_stack(
    api: Api, name: str, image: str, poll: float, timeout: float
) -> tuple[float, dict]:
    """POST one server, GET it every `poll` s until ACTIVE: (seconds, server view)."""
    t0 = time.perf_counter()
    created = await api.call(
        "POST",
        SERVERS,
        (202,),
        json={"server": {"name": name, "imageRef": image, "flavorRef": FLAVOR, "networks": "auto"}},
    )
    uuid = created["server"]["id"]
    while True:
        server = (await api.call("GET", f"{SERVERS}/{uuid}", (200,)))["server"]
        if server["status"] == "ACTIVE":
            return time.perf_counter() - t0, server
        if server["status"] == "ERROR":
            raise RuntimeError(f"{name} went to ERROR: {server.get('fault')}")
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{name} still {server['status']} after {timeout} s")
        await asyncio.sleep(poll)


async def delete_and_wait(api: Api, uuid: str, timeout: float = 120) -> None:
    await api.call("DELETE", f"{SERVERS}/{uuid}", (204, 404))
    deadline = time.monotonic() + timeout
    while True:
        async with api.session.get(f"{api.base}{SERVERS}/{uuid}", headers=api.headers) as r:
            if r.status == 404:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server {uuid} still there {timeout} s after DELETE")
        await asyncio.sleep(0.2)


# -- reference: bare virsh create ---------------------------------------------------------------


def reference_xml(template: str, name: str, workdir: Path, base: Path, config_drive: Path) -> str:
    """The mininova domain XML as a standalone domain: new name, no uuid/metadata/MAC, own
    overlay, config drive copy and console log under `workdir`."""
    root = ET.fromstring(template)
    for tag in ("uuid", "metadata"):
        for el in root.findall(tag):
            root.remove(el)
    root.find("name").text = name  # type: ignore[union-attr]
    workdir.mkdir(mode=0o755)
    overlay = workdir / "disk"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(base.resolve()),
            str(overlay),
            "1G",
        ],
        check=True,
    )
    cd_copy = workdir / "disk.config"
    shutil.copyfile(config_drive, cd_copy)
    os.chmod(cd_copy, 0o644)
    for disk in root.findall("./devices/disk"):
        src = disk.find("source")
        if src is not None:
            src.set("file", str(overlay if disk.get("device") == "disk" else cd_copy))
    for tag in ("serial", "console"):
        for dev in root.findall(f"./devices/{tag}"):
            src = dev.find("source")
            if src is not None and src.get("path"):
                src.set("path", str(workdir / "console.log"))
    for nic in root.findall("./devices/interface"):
        for mac in nic.findall("mac"):
            nic.remove(mac)
    for gfx in root.findall("./devices/graphics"):
        gfx.attrib.pop("port", None)
        gfx.set("autoport", "yes")
    return ET.tostring(root, encoding="unicode")


def boot_reference(xml: str, name: str, workdir: Path, poll: float, timeout: float) -> float:
    xml_file = workdir / "domain.xml"
    xml_file.write_text(xml)
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["virsh", "-c", URI, "create", str(xml_file)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"virsh create {name} failed: {proc.stderr.strip()}")
    while domstate(name) != "running":
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{name} not running after {timeout} s")
        time.sleep(poll)
    return time.perf_counter() - t0


# -- main ---------------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def run(cloud: LibvirtCloud, args: argparse.Namespace) -> None:
    assert cloud.serve is not None and cloud.agent is not None
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        api = Api(session, cloud.serve.url)
        await api.login(cloud.serve.password)
        try:
            hosts = await api.wait_hosts_up(1, timeout=90)
            image = await upload_tiny(api)
            print(f"cloud up: serve {cloud.serve.url}, agent {hosts[0]} (libvirt, TCG)")

            # Warm-up: cold image cache; its domain XML is the reference's template.
            cold, server = await boot_full_stack(
                api, "warmup", image, args.poll_interval, args.timeout
            )
            domain = server["OS-EXT-SRV-ATTR:instance_name"]
            template = virsh("dumpxml", "--inactive", domain, check=True).stdout
            inst = cloud.tmp / "agent" / "instances" / server["id"]
            ref_cd = cloud.tmp / "reference-disk.config"
            shutil.copyfile(inst / "disk.config", ref_cd)
            await delete_and_wait(api, server["id"])
            base = cloud.base_dir / image

            full: list[float] = []
            bare: list[float] = []
            for i in range(args.boots):
                seconds, server = await boot_full_stack(
                    api, f"bench-{i}", image, args.poll_interval, args.timeout
                )
                full.append(seconds)
                await delete_and_wait(api, server["id"])

                name = f"mininova-bench-{os.getpid()}-{i}"
                workdir = cloud.tmp / name
                xml = reference_xml(template, name, workdir, base, ref_cd)
                cloud.reference_names.append(name)
                bare.append(
                    await asyncio.to_thread(
                        boot_reference, xml, name, workdir, args.poll_interval, args.timeout
                    )
                )
                purge_domains(names=[name])
                print(
                    f"  boot {i + 1}/{args.boots}: full stack {full[-1] * 1000:.0f} ms, "
                    f"virsh create {bare[-1] * 1000:.0f} ms"
                )
            report(args, cold, full, bare)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(api.delete_all(), 150)


def report(args: argparse.Namespace, cold: float, full: list[float], bare: list[float]) -> None:
    print(
        f"boots={args.boots} flavor=m1.micro (1 vCPU, 128 MiB) virt_type=qemu (TCG) "
        f"poll_interval={args.poll_interval}s"
    )
    print(f"  warm-up, cold image cache (download + boot)  {cold * 1000:.0f} ms")
    print(
        f"  full stack POST->ACTIVE   p50 {p50(full) * 1000:.0f} ms  "
        f"(min {min(full) * 1000:.0f}, max {max(full) * 1000:.0f})"
    )
    print(
        f"reference: bare virsh create -> running  p50 {p50(bare) * 1000:.0f} ms  "
        f"(min {min(bare) * 1000:.0f}, max {max(bare) * 1000:.0f})"
    )
    print(
        f"  ratio full stack / virsh create  {p50(full) / p50(bare):.2f}x  "
        f"(control-plane overhead p50 {(p50(full) - p50(bare)) * 1000:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=3, help="boots of each kind (N)")
    parser.add_argument("--poll-interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=180, help="per boot (s)")
    parser.add_argument("--keep", action="store_true", help="keep the /var/tmp directory")
    args = parser.parse_args()
    if args.boots < 1:
        parser.error("--boots must be >= 1")
    reason = host_skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    interruptible()
    print("starting mininova serve + a libvirt agent ...")
    with LibvirtCloud(keep=args.keep) as cloud:
        asyncio.run(run(cloud, args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
