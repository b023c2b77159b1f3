#!/usr/bin/env python3
"""Boot throughput benchmark: N servers through the real HTTP API onto M fake-driver agents.

Starts `mininova serve` and M `mininova agent --driver fake` processes on loopback (distinct
--host names, enough fake inventory for every server on any host), uploads a small image, then
boots N servers with POST /compute/v2.1/servers (microversion 2.100, keystone token), at most
--concurrency in flight, polling each server until ACTIVE (or ERROR). Prints:

* boots/s (N / wall time from the first POST to the last ACTIVE)
* p50 / p99 POST->ACTIVE (observed by polling, so quantised by --poll-interval)
* how many servers landed on each host (the scheduler spreads by free RAM)
* the reference, measured in the same run: the fake driver's own spawn time in this process
  (it sleeps --boot-seconds), and the ratio p50 / that floor

Everything is deleted and the processes are stopped at the end, also on Ctrl-C or an error.

    .venv/bin/python bench/boot_bench.py [--servers 100] [--agents 4] [--concurrency 16]
                                         [--boot-seconds 0.2] [--poll-interval 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.procs import Agent, Serve, base_env, free_port  # noqa: E402

SERVERS = "/compute/v2.1/servers"
MICROVERSION = "2.100"
FLAVOR = "1"  # m1.nano: 1 vCPU, 64 MiB, 1 GiB


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# -- a cloud of real processes ----------------------------------------------------------------


class Managed:
    """`with` support for anything with start()/stop(): stop also when start fails."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Cloud(Managed):
    """`mininova serve` + M fake agents in a temporary directory; stop() undoes everything."""

    agents: int = 1
    servers: int = 100  # inventory is sized so that any one host could take all of them
    boot_seconds: float = 0.2
    keep: bool = False
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mininova-bench-")))
    serve: Serve | None = None
    agent_procs: list[Agent] = field(default_factory=list)

    def start(self) -> None:
        env = base_env(self.tmp)
        env.update(
            {
                "MININOVA_AGENT_FAKE_BOOT_SECONDS": str(self.boot_seconds),
                "MININOVA_AGENT_FAKE_VCPUS": str(max(16, self.servers)),
                "MININOVA_AGENT_FAKE_MEMORY_MB": str(max(32768, 64 * self.servers)),
                "MININOVA_AGENT_FAKE_DISK_GB": str(max(500, 2 * self.servers)),
            }
        )
        self.serve = Serve(self.tmp / "data", free_port(), env)
        self.serve.start()
        for i in range(self.agents):
            agent = Agent(self.serve, f"fake{i + 1}", data_dir=self.tmp / f"agent-fake{i + 1}")
            agent.start()
            self.agent_procs.append(agent)

    def stop(self) -> None:
        for agent in self.agent_procs:
            with contextlib.suppress(Exception):
                agent.stop()
        if self.serve is not None:
            with contextlib.suppress(Exception):
                self.serve.stop()
        if self.keep:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Api:
    """An admin keystone token and a few compute/image calls."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base
        self.token = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token, "OpenStack-API-Version": f"compute {MICROVERSION}"}

    async def login(self, password: str, user: str = "admin", project: str = "admin") -> dict:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": user, "domain": {"name": "Default"}, "password": password}
                    },
                },
                "scope": {"project": {"name": project, "domain": {"name": "Default"}}},
            }
        }
        async with self.session.post(self.base + "/identity/v3/auth/tokens", json=body) as r:
            if r.status != 201:
                raise RuntimeError(f"login failed: {r.status} {await r.text()}")
            self.token = r.headers["X-Subject-Token"]
            return (await r.json())["token"]

    async def call(self, method: str, path: str, expect: tuple[int, ...], **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            raw = await r.read()
            if r.status not in expect:
                raise RuntimeError(f"{method} {path}: {r.status} {raw[:500]!r}")
            return await r.json(content_type=None) if raw else None

    async def unlimited_quota(self, project_id: str) -> None:
        await self.call(
            "PUT",
            f"/compute/v2.1/os-quota-sets/{project_id}",
            (200,),
            json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}},
        )

    async def upload_image(self, size: int = 65536) -> str:
        image = await self.call(
            "POST",
            "/image/v2/images",
            (201,),
            json={
                "name": "bench",
                "disk_format": "qcow2",
                "container_format": "bare",
                "visibility": "public",
            },
        )
        await self.call(
            "PUT",
            f"/image/v2/images/{image['id']}/file",
            (204,),
            data=b"QFI\xfb" + b"\0" * (size - 4),
            headers={"Content-Type": "application/octet-stream"},
        )
        return image["id"]

    async def wait_hosts_up(self, count: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            body = await self.call("GET", "/compute/v2.1/os-services?binary=nova-compute", (200,))
            up = sorted(s["host"] for s in body["services"] if s["state"] == "up")
            if len(up) >= count:
                return up
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {up} of {count} agents came up in {timeout}s")
            await asyncio.sleep(0.2)

    async def boot(self, name: str, image: str, poll: float, timeout: float) -> tuple[float, dict]:
        """POST one server and poll it until ACTIVE or ERROR: (seconds, server view)."""
        t0 = time.perf_counter()
        created = await self.call(
            "POST",
            SERVERS,
            (202,),
            json={
                "server": {"name": name, "imageRef": image, "flavorRef": FLAVOR, "networks": "none"}
            },
        )
        uuid = created["server"]["id"]
        deadline = t0 + timeout
        while True:
            body = await self.call("GET", f"{SERVERS}/{uuid}", (200,))
            server = body["server"]
            if server["status"] in ("ACTIVE", "ERROR"):
                return time.perf_counter() - t0, server
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{name} still {server['status']} after {timeout}s")
            await asyncio.sleep(poll)

    async def delete_all(self, concurrency: int = 16, timeout: float = 120) -> int:
        """Delete every server of every project and wait until the list is empty."""
        body = await self.call("GET", SERVERS + "?all_tenants=1", (200,))
        ids = [s["id"] for s in body["servers"]]
        sem = asyncio.Semaphore(concurrency)

        async def one(uuid: str) -> None:
            async with sem:
                await self.call("DELETE", f"{SERVERS}/{uuid}", (204, 404))

        await asyncio.gather(*(one(u) for u in ids))
        deadline = time.monotonic() + timeout
        while (await self.call("GET", SERVERS + "?all_tenants=1", (200,)))["servers"]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"servers still present {timeout}s after DELETE")
            await asyncio.sleep(0.2)
        return len(ids)


async def boot_many(
    api: Api,
    image: str,
    count: int,
    concurrency: int,
    poll: float,
    timeout: float,
    prefix: str = "bench",
) -> tuple[float, list[float], list[dict]]:
    """Boot `count` servers, at most `concurrency` in flight: (wall s, latencies, views)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    views: list[dict] = []

    async def one(i: int) -> None:
        async with sem:
            seconds, server = await api.boot(f"{prefix}-{i:04d}", image, poll, timeout)
        latencies.append(seconds)
        views.append(server)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - t0, latencies, views


# -- the same-run reference ---------------------------------------------------------------


async def fake_spawn_floor(boot_seconds: float, samples: int = 5) -> float:
    """Median time of FakeDriver.spawn in this process: the driver's own boot floor."""
    from mininova.virt.driver import FlavorSpec, ImageSpec, InstanceSpec
    from mininova.virt.fake import FakeDriver

    driver = FakeDriver(boot_seconds=boot_seconds)
    times = []
    for i in range(samples):
        spec = InstanceSpec(
            uuid=f"00000000-0000-4000-8000-{i:012d}",
            name=f"floor{i}",
            hostname=f"floor{i}",
            domain_name=f"instance-{i:08x}",
            project_id="p",
            user_id="u",
            flavor=FlavorSpec(id=FLAVOR, name="m1.nano", vcpus=1, ram_mb=64, disk_gb=1),
            image=ImageSpec(
                id="i",
                name="bench",
                disk_format="qcow2",
                size=0,
                checksum="",
                url="",
                capability="",
            ),
            mac_address=f"fa:16:3e:00:00:{i:02x}",
        )
        t0 = time.perf_counter()
        await driver.spawn(spec)
        times.append(time.perf_counter() - t0)
        await driver.destroy(spec.uuid)
    return statistics.median(times)


# -- main -----------------------------------------------------------------------------------


def interruptible() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so clean-up runs (even when started with
    `&` from a script, where SIGINT would otherwise be ignored)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)


async def run(cloud: Cloud, args: argparse.Namespace) -> None:
    assert cloud.serve is not None
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, 16))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        api = Api(session, cloud.serve.url)
        token = await api.login(cloud.serve.password)
        try:
            await api.unlimited_quota(token["project"]["id"])
            hosts = await api.wait_hosts_up(args.agents)
            image = await api.upload_image()
            print(f"cloud up: serve {cloud.serve.url}, agents {', '.join(hosts)}")
            floor = await fake_spawn_floor(args.boot_seconds)
            wall, latencies, views = await boot_many(
                api, image, args.servers, args.concurrency, args.poll_interval, args.timeout
            )
            report(args, wall, latencies, views, hosts, floor)
        finally:
            with contextlib.suppress(Exception):
                deleted = await asyncio.wait_for(api.delete_all(), 150)
                print(f"deleted {deleted} servers")


def report(
    args: argparse.Namespace,
    wall: float,
    latencies: list[float],
    views: list[dict],
    hosts: list[str],
    floor: float,
) -> None:
    statuses = Counter(v["status"] for v in views)
    placed = Counter(v.get("OS-EXT-SRV-ATTR:host") for v in views if v["status"] == "ACTIVE")
    p50 = statistics.median(latencies)
    p99 = percentile(latencies, 99)
    print(
        f"servers={args.servers} agents={args.agents} concurrency={args.concurrency} "
        f"boot_seconds={args.boot_seconds} poll_interval={args.poll_interval}"
    )
    print(f"  statuses           {dict(statuses)}")
    print(f"  wall               {wall:.2f} s")
    print(f"  boots/s            {args.servers / wall:.1f}")
    print(f"  POST->ACTIVE p50   {p50 * 1000:.0f} ms")
    print(f"  POST->ACTIVE p99   {p99 * 1000:.0f} ms")
    print(f"  POST->ACTIVE max   {max(latencies) * 1000:.0f} ms")
    print("  per host           " + ", ".join(f"{h}={placed.get(h, 0)}" for h in hosts))
    if args.servers >= len(hosts):
        print(
            f"  spread             min/max per host = {min(placed.get(h, 0) for h in hosts)}"
            f"/{max(placed.get(h, 0) for h in hosts)}"
        )
    print(f"reference: fake driver spawn in-process (floor) {floor * 1000:.0f} ms")
    print(f"  ratio p50 / floor  {p50 / floor:.2f}x")
    ideal = args.concurrency / floor
    print(
        f"  boots/s ceiling at this concurrency (concurrency / floor) {ideal:.1f}; "
        f"achieved {args.servers / wall / ideal:.0%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="boots in flight (POST until ACTIVE)"
    )
    parser.add_argument(
        "--boot-seconds",
        type=float,
        default=0.2,
        help="fake driver spawn time (MININOVA_AGENT_FAKE_BOOT_SECONDS)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120, help="per server (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.servers < 1 or args.agents < 1 or args.concurrency < 1:
        parser.error("--servers, --agents and --concurrency must be >= 1")
    interruptible()
    print(f"starting mininova serve + {args.agents} fake agents ...")
    with Cloud(
        agents=args.agents, servers=args.servers, boot_seconds=args.boot_seconds, keep=args.keep
    ) as cloud:
        asyncio.run(run(cloud, args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
