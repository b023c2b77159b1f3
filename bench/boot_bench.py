#!/usr/bin/env python3
"""Boot throughput benchmark: N servers through the real HTTP API onto M fake-driver agents.

Starts `mininova serve` and M `mininova agent --driver fake` processes on loopback (distinct
--host names, enough fake inventory for every server on any host), uploads a small image, then
boots N servers with POST /compute/v2.1/servers (microversion 2.100, keystone token), at most
--concurrency in flight, polling each server until ACTIVE (or ERROR). Prints:

* boots/s (N / wall time from the first POST to the last ACTIVE)
* p50 / p99 POST->ACTIVE (observed by polling, so quantised by --poll-interval)
* how many servers landed on each host (the scheduler spreads by free RAM)
* CPU % (of one core, utime+stime from /proc) over the boot loop of serve, of this bench
  client and of the agent processes, and how busy the whole machine was: which process bounds
  the rate
* the reference, measured in the same run: the fake driver's own spawn time in this process
  (it sleeps --boot-seconds), and the ratio p50 / that floor

`--hosts H` (instead of `--agents M`) runs H real agents (`mininova.agent.service.Agent` with
a `FakeDriver`, the `Fleet` of agents_bench.py) split over `--agent-processes P` helper
processes (`agents_bench.py --fleet`), each fake host sized for twice its share of the servers;
serve then keeps its default 5 s heartbeat interval (the e2e 1 s would be H heartbeats/s).
The per-host figures are summarised (min/max servers per host, hosts with >= 1 server).

`--poll each` (default) GETs every server in flight once per --poll-interval; `--poll list`
GETs ONE `/servers/detail?changes-since=T` per interval for all of them (T = the previous
poll's start minus --poll-margin, 0.25 s; a server not seen within 2 s is also polled on
its own). The p50 of POST->ACTIVE is also split into the POST's round trip, the build (its
reply until the server's `launched_at`) and the polling (`launched_at` until seen ACTIVE).

Everything is deleted and the processes are stopped at the end, also on Ctrl-C or an error.

    .venv/bin/python bench/boot_bench.py [--servers 100] [--agents 4 | --hosts 1000]
                                         [--agent-processes 2] [--concurrency 16]
                                         [--boot-seconds 0.2] [--poll-interval 0.05]
                                         [--poll each|list] [--poll-margin 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mininova.timeutil import iso  # noqa: E402
from tests.e2e.procs import Agent, Serve, base_env, free_port  # noqa: E402
from tests.kit.postgres import PostgresServer, find_pg_bin  # noqa: E402

SERVERS = "/compute/v2.1/servers"
MICROVERSION = "2.100"
FLAVOR = "1"  # m1.nano: 1 vCPU, 64 MiB, 1 GiB
TIMES = "bench:times"  # (POST round trip s, wall clock of its reply, wall clock when seen final)
FLAVOR_VCPUS, FLAVOR_RAM_MB, FLAVOR_DISK_GB = 1, 64, 1
FAKE_DEFAULTS = {"vcpus": 16, "memory_mb": 32768, "disk_gb": 500}  # AgentConfig's fake_*
CLK_TCK = os.sysconf("SC_CLK_TCK")
FLEET_SCRIPT = ROOT / "bench" / "agents_bench.py"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# -- /proc -----------------------------------------------------------------------------------


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return (total - values[3] - values[4]) / CLK_TCK, total / CLK_TCK


class CpuMeter:
    """CPU % (100 = one core) of named groups of processes between start() and stop()."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[str, float] = {}
        self.machine0 = (0.0, 0.0)
        self.t0 = 0.0
        self.percent: dict[str, float] = {}
        self.machine_percent = 0.0

    def _sample(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups.items()}

    def start(self) -> None:
        self.t0, self.before, self.machine0 = (
            time.monotonic(),
            self._sample(),
            machine_busy_seconds(),
        )

    def stop(self) -> None:
        wall = time.monotonic() - self.t0
        after, (busy, total) = self._sample(), machine_busy_seconds()
        self.percent = {n: 100 * (after[n] - self.before[n]) / wall for n in self.groups}
        self.machine_percent = 100 * (busy - self.machine0[0]) / max(1e-9, total - self.machine0[1])


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise the soft open-file limit (inherited by serve) to `needed` if the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- a cloud of real processes ----------------------------------------------------------------


DATABASES = ("sqlite", "postgresql")
DATABASE_HELP = "serve's store: SQLite (default) or a throwaway PostgreSQL server"


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
class FleetProc:
    """One `agents_bench.py --fleet` child: `count` in-process fake agents from `first` on."""

    cmd: list[str]
    log: Path
    env: dict[str, str]
    count: int
    proc: subprocess.Popen | None = None
    connect_seconds: float = 0.0

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,  # EOF (our exit) stops the child too
            stdout=subprocess.PIPE,
            stderr=out,
            env=self.env,
            text=True,
        )

    def wait_ready(self) -> None:
        """Block until the child printed `ready N S` (all its agents connected)."""
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if line[:2] != ["ready", str(self.count)]:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"fleet child did not get ready ({line}): {tail}")
        self.connect_seconds = float(line[2])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                pipe.close()  # type: ignore[union-attr]
        self.proc = None


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal shares (the first ones one bigger)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Cloud(Managed):
    """`mininova serve` + M fake agents in a temporary directory; stop() undoes everything.

    With `hosts` > 0: `hosts` in-process agents in `agent_processes` fleet children instead of
    `agents` agent processes."""

    agents: int = 1
    servers: int = 100  # inventory is sized so that any one host could take all of them
    boot_seconds: float = 0.2
    keep: bool = False
    hosts: int = 0
    agent_processes: int = 2
    connect_concurrency: int = 100
    database: str = "sqlite"  # or "postgresql": a throwaway server (tests/kit/postgres.py)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mininova-bench-")))
    serve: Serve | None = None
    agent_procs: list[Agent] = field(default_factory=list)
    fleets: list[FleetProc] = field(default_factory=list)
    postgres: PostgresServer | None = None
    database_url: str | None = None

    def _env(self) -> dict[str, str]:
        """serve's env; with `database="postgresql"`, a fresh database on a server started
        for this run (Debian's binaries, as the tests use them)."""
        if self.database == "postgresql" and self.postgres is None:
            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise RuntimeError("no PostgreSQL server binaries (scripts/host-setup.sh)")
            self.postgres = PostgresServer(bin_dir).start()
            self.database_url = self.postgres.url(self.postgres.create_database("bench"))
        return base_env(self.tmp, self.database_url)

    def agent_pids(self) -> list[int]:
        procs = [a.proc for a in self.agent_procs] + [f.proc for f in self.fleets]
        return [p.pid for p in procs if p is not None]

    def fleet_inventory(self) -> dict[str, int]:
        """Each fleet host sized for twice its share of the servers (the spread is by free
        RAM, not exact), and never below AgentConfig's defaults."""
        share = 2 * math.ceil(self.servers / self.hosts)
        return {
            "vcpus": max(FAKE_DEFAULTS["vcpus"], share * FLAVOR_VCPUS),
            "memory_mb": max(FAKE_DEFAULTS["memory_mb"], share * FLAVOR_RAM_MB),
            "disk_gb": max(FAKE_DEFAULTS["disk_gb"], share * FLAVOR_DISK_GB),
        }

    def start(self) -> None:
        if self.hosts:
            self._start_fleets()
            return
        env = self._env()
        # The default heartbeat (5 s), not the e2e tests' 1 s: each beat carries the guest list.
        for name in ("MININOVA_HEARTBEAT_INTERVAL", "MININOVA_AGENT_HEARTBEAT_INTERVAL"):
            env.pop(name, None)
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

    def _start_fleets(self) -> None:
        raise_nofile(self.hosts + 1024)  # serve holds one socket per agent; inherited
        env = self._env()
        del env["MININOVA_HEARTBEAT_INTERVAL"]  # serve's default 5 s, as agents_bench.py
        self.serve = Serve(self.tmp / "data", free_port(), env)
        self.serve.start()
        inventory = self.fleet_inventory()
        first = 0
        for k, count in enumerate(split(self.hosts, self.agent_processes)):
            cmd = [
                sys.executable,
                str(FLEET_SCRIPT),
                "--fleet",
                "--controller",
                self.serve.url,
                "--token",
                self.serve.token,
                "--agents",
                str(count),
                "--first",
                str(first),
                "--data-dir",
                str(self.tmp / f"fleet{k}"),
                "--connect-concurrency",
                str(self.connect_concurrency),
                "--fake-vcpus",
                str(inventory["vcpus"]),
                "--fake-memory-mb",
                str(inventory["memory_mb"]),
                "--fake-disk-gb",
                str(inventory["disk_gb"]),
                "--fake-boot-seconds",
                str(self.boot_seconds),
            ]
            fleet = FleetProc(cmd, self.tmp / f"fleet{k}.log", env, count)
            self.fleets.append(fleet)
            fleet.start()
            first += count
        for fleet in self.fleets:
            fleet.wait_ready()

    def stop(self) -> None:
        for fleet in self.fleets:
            with contextlib.suppress(Exception):
                fleet.stop()
        for agent in self.agent_procs:
            with contextlib.suppress(Exception):
                agent.stop()
        if self.serve is not None:
            with contextlib.suppress(Exception):
                self.serve.stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop()
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

    async def boot(
        self, name: str, image: str, poll: float, timeout: float, lister: ListPoller | None = None
    ) -> tuple[float, dict]:
        """POST one server and poll it until ACTIVE or ERROR: (seconds, server view); with
        `lister`, its shared list polls see the status instead of our own GETs."""
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
        accepted = (time.perf_counter() - t0, time.time())
        deadline = t0 + timeout
        if lister is not None:
            server = await lister.wait(uuid, name, t0, deadline)
            return time.perf_counter() - t0, {**server, TIMES: (*accepted, time.time())}
        while True:
            body = await self.call("GET", f"{SERVERS}/{uuid}", (200,))
            server = body["server"]
            if server["status"] in ("ACTIVE", "ERROR"):
                return time.perf_counter() - t0, {**server, TIMES: (*accepted, time.time())}
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


FINAL = ("ACTIVE", "ERROR")


class ListPoller:
    """`--poll list`: ONE GET /servers/detail?changes-since=T per poll interval for every
    server in flight, T = the previous poll's start minus MARGIN (updated_at is stamped before
    the commit, so a late commit is still seen; a commit here lands milliseconds after its
    stamp, and a miss would show as fallback GETs). A server not seen within FALLBACK seconds
    is also GET on its own (once per FALLBACK), so none waits for ever on a missed change."""

    MARGIN = 0.25
    FALLBACK = 2.0

    def __init__(self, api: Api, interval: float, margin: float = MARGIN) -> None:
        self.api, self.interval, self.margin = api, interval, margin
        self.pending: dict[str, asyncio.Future[dict]] = {}
        self.lists = self.listed = self.fallbacks = 0
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def wait(self, uuid: str, name: str, t0: float, deadline: float) -> dict:
        future = self.pending[uuid] = asyncio.get_running_loop().create_future()
        try:
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise RuntimeError(f"{name} not ACTIVE after {deadline - t0:g}s")
                try:
                    return await asyncio.wait_for(asyncio.shield(future), min(left, self.FALLBACK))
                except TimeoutError:
                    self.fallbacks += 1
                    server = (await self.api.call("GET", f"{SERVERS}/{uuid}", (200,)))["server"]
                    if server["status"] in FINAL:
                        return server
        finally:
            self.pending.pop(uuid, None)

    async def _run(self) -> None:
        since = datetime.now(UTC)
        while True:
            started = datetime.now(UTC)
            if self.pending:
                query = {"changes-since": iso(since - timedelta(seconds=self.margin))}
                body = await self.api.call("GET", SERVERS + "/detail", (200,), params=query)
                self.lists += 1
                self.listed += len(body["servers"])
                for server in body["servers"]:
                    future = self.pending.get(server["id"])
                    if future is not None and not future.done() and server["status"] in FINAL:
                        future.set_result(server)
            since = started
            await asyncio.sleep(self.interval)


async def boot_many(
    api: Api,
    image: str,
    count: int,
    concurrency: int,
    poll: float,
    timeout: float,
    prefix: str = "bench",
    lister: ListPoller | None = None,
) -> tuple[float, list[float], list[dict]]:
    """Boot `count` servers, at most `concurrency` in flight: (wall s, latencies, views)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    views: list[dict] = []

    async def one(i: int) -> None:
        async with sem:
            seconds, server = await api.boot(f"{prefix}-{i:04d}", image, poll, timeout, lister)
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
            hosts = await api.wait_hosts_up(args.hosts or args.agents, timeout=120)
            image = await api.upload_image()
            if args.hosts:
                connect = ", ".join(f"{f.count} in {f.connect_seconds:.1f} s" for f in cloud.fleets)
                print(
                    f"cloud up: serve {cloud.serve.url}, {len(hosts)} hosts up in "
                    f"{len(cloud.fleets)} fleet processes (connected {connect}), "
                    f"each {cloud.fleet_inventory()}"
                )
            else:
                print(f"cloud up: serve {cloud.serve.url}, agents {', '.join(hosts)}")
            floor = await fake_spawn_floor(args.boot_seconds)
            assert cloud.serve.proc is not None
            meter = CpuMeter(
                {
                    "serve": [cloud.serve.proc.pid],
                    "client": [os.getpid()],
                    "agents": cloud.agent_pids(),
                }
            )
            lister = (
                ListPoller(api, args.poll_interval, args.poll_margin)
                if args.poll == "list"
                else None
            )
            async with contextlib.AsyncExitStack() as stack:
                if lister is not None:
                    await stack.enter_async_context(lister)
                meter.start()
                wall, latencies, views = await boot_many(
                    api,
                    image,
                    args.servers,
                    args.concurrency,
                    args.poll_interval,
                    args.timeout,
                    lister=lister,
                )
                meter.stop()
            report(args, wall, latencies, views, hosts, floor, meter, lister)
        finally:
            with contextlib.suppress(Exception):
                deleted = await asyncio.wait_for(api.delete_all(), 150)
                print(f"deleted {deleted} servers")


def latency_split(views: list[dict]) -> dict[str, float]:
    """Medians of POST->ACTIVE's parts for the ACTIVE servers: the POST's round trip, its reply
    until the server's `launched_at` (the build, by serve's clock: the same machine's), and
    `launched_at` until this client saw it ACTIVE (the polling)."""
    posts, builds, polls = [], [], []
    for view in views:
        launched = view.get("OS-SRV-USG:launched_at")
        if view["status"] != "ACTIVE" or not launched or TIMES not in view:
            continue
        post, replied, seen = view[TIMES]
        at = datetime.fromisoformat(launched).replace(tzinfo=UTC).timestamp()
        posts.append(post)
        builds.append(at - replied)
        polls.append(seen - at)
    if not posts:
        return {}
    return {
        "POST": statistics.median(posts),
        "build": statistics.median(builds),
        "seen after": statistics.median(polls),
    }


def report(
    args: argparse.Namespace,
    wall: float,
    latencies: list[float],
    views: list[dict],
    hosts: list[str],
    floor: float,
    meter: CpuMeter,
    lister: ListPoller | None,
) -> None:
    statuses = Counter(v["status"] for v in views)
    placed = Counter(v.get("OS-EXT-SRV-ATTR:host") for v in views if v["status"] == "ACTIVE")
    p50 = statistics.median(latencies)
    p99 = percentile(latencies, 99)
    where = (
        f"hosts={args.hosts} agent_processes={args.agent_processes}"
        if args.hosts
        else f"agents={args.agents}"
    )
    print(
        f"servers={args.servers} {where} concurrency={args.concurrency} "
        f"boot_seconds={args.boot_seconds} poll_interval={args.poll_interval} poll={args.poll}"
    )
    print(f"  statuses           {dict(statuses)}")
    print(f"  wall               {wall:.2f} s")
    print(f"  boots/s            {args.servers / wall:.1f}")
    print(f"  POST->ACTIVE p50   {p50 * 1000:.0f} ms")
    print(f"  POST->ACTIVE p99   {p99 * 1000:.0f} ms")
    print(f"  POST->ACTIVE max   {max(latencies) * 1000:.0f} ms")
    split = latency_split(views)
    if split:
        print(
            "  where it went p50  "
            + ", ".join(f"{part} {seconds * 1000:.0f} ms" for part, seconds in split.items())
        )
    counts = [placed.get(h, 0) for h in hosts]
    if args.hosts:
        histogram = ", ".join(f"{n}: {k}" for n, k in sorted(Counter(counts).items()))
        print(f"  hosts by servers   {{servers on a host: hosts}} = {{{histogram}}}")
    else:
        print("  per host           " + ", ".join(f"{h}={placed.get(h, 0)}" for h in hosts))
    if args.servers >= len(hosts):
        print(f"  spread             min/max per host = {min(counts)}/{max(counts)}")
    print(f"  hosts with >= 1    {sum(1 for n in counts if n)}/{len(hosts)}")
    cpu = meter.percent
    print(
        f"  CPU over the loop  serve {cpu['serve']:.0f} %, client (this bench) "
        f"{cpu['client']:.0f} %, agents {cpu['agents']:.0f} % (100 % = one core); "
        f"machine {meter.machine_percent:.0f} % of {os.cpu_count()} cores"
    )
    if lister is not None:
        print(
            f"  list polls         {lister.lists} ({lister.listed / max(1, lister.lists):.0f} "
            f"servers each on average), per-server fallback GETs {lister.fallbacks}"
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
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--agents", type=int, default=4, help="`mininova agent` processes")
    where.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="in-process fake agents in --agent-processes helper processes (instead of --agents)",
    )
    parser.add_argument(
        "--agent-processes", type=int, default=2, help="helper processes for --hosts"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=100, help="--hosts agents dialing at once"
    )
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
    parser.add_argument(
        "--poll-margin",
        type=float,
        default=ListPoller.MARGIN,
        help="`--poll list`: how far before the previous poll's start each listing reaches (s)",
    )
    parser.add_argument(
        "--poll",
        choices=("each", "list"),
        default="each",
        help="each: GET every server in flight per interval; list: ONE changes-since list",
    )
    parser.add_argument("--timeout", type=float, default=120, help="per server (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--database", choices=DATABASES, default="sqlite", help=DATABASE_HELP)
    args = parser.parse_args()
    if args.servers < 1 or args.agents < 1 or args.concurrency < 1:
        parser.error("--servers, --agents and --concurrency must be >= 1")
    if args.hosts < 0 or (args.hosts and not 1 <= args.agent_processes <= args.hosts):
        parser.error("--hosts must be >= 0 and 1 <= --agent-processes <= --hosts")
    interruptible()
    if args.hosts:
        print(
            f"starting mininova serve + {args.hosts} in-process fake agents in "
            f"{args.agent_processes} processes ..."
        )
    else:
        print(f"starting mininova serve + {args.agents} fake agents ...")
    with Cloud(
        agents=args.agents,
        servers=args.servers,
        boot_seconds=args.boot_seconds,
        keep=args.keep,
        hosts=args.hosts,
        agent_processes=args.agent_processes,
        connect_concurrency=args.connect_concurrency,
        database=args.database,
    ) as cloud:
        asyncio.run(run(cloud, args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
