#!/usr/bin/env python3
"""Agent-link scale benchmark: N real agents (fake driver) in one process, one controller.

Starts one `mininova serve` subprocess on loopback (plain HTTP, no local agent, the default
heartbeat interval of 5 s) and, in this process, N instances of the real agent
(`mininova.agent.service.Agent` with a `FakeDriver`, each with its own --host name and data
directory for its credential.json), so the frames on the wire are exactly the real ones: a
hello that trades the join token serve printed for a host credential, then heartbeats at the
interval the hello reply gives, websocket pings both ways. Measures, on the controller process:

* RSS (VmRSS of /proc/<pid>/status) before any agent -- the same-run reference -- and with N
  agents connected (right after connecting and after the idle window): MB, KiB per link
* idle CPU % (utime+stime of /proc/<pid>/stat) over --idle-seconds with N agents heartbeating;
  reference: the same window with 0 agents, measured first
* the time to connect all N (dials at most --connect-concurrency at a time)

It also reports this process's CPU over the window (if it is saturated, heartbeats are late and
the controller's figure is too low) and how many hosts the API shows as up. The agents are
stopped, serve is stopped and the temporary directory is removed at the end, also on Ctrl-C.

    .venv/bin/python bench/agents_bench.py [--agents 1000] [--idle-seconds 30]
                                           [--connect-concurrency 100]

`--fleet` is the helper mode of `boot_bench.py --hosts`: no serve and no measurement, only N
agents (hosts bench<first>...) dialing --controller with --token and fake inventory/boot time
from the --fake-* options; prints `ready N SECONDS` on stdout once all are connected, and stops
them and exits 0 on SIGTERM/SIGINT or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot_bench import Api, cpu_seconds, interruptible, raise_nofile  # noqa: E402
from mininova.agent.service import Agent  # noqa: E402
from mininova.config import AgentConfig, ServeConfig  # noqa: E402
from mininova.virt.factory import create_driver  # noqa: E402
from tests.e2e.procs import Serve, base_env, free_port  # noqa: E402

SETTLE_SECONDS = 2.0  # after serve answers / after the last agent connected


# -- /proc -----------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def cpu_window(pids: dict[str, int | str], seconds: float) -> dict[str, float]:
    """CPU % (of one core) of each process over a window of `seconds` wall time."""
    t0 = time.monotonic()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    return {name: 100 * (cpu_seconds(pid) - before[name]) / wall for name, pid in pids.items()}


# -- N real agents in this process -----------------------------------------------------------


@dataclass
class Fleet:
    """N real agents with fake drivers, one asyncio task each."""

    controller: str
    token: str
    tmp: Path
    agents: list[Agent]
    tasks: list[asyncio.Task[None]]
    first: int = 0  # host names bench<first>, bench<first + 1>, ...
    settings: dict[str, Any] = field(default_factory=dict)  # other AgentConfig fields (fake_*)

    @classmethod
    def create(
        cls, controller: str, token: str, tmp: Path, first: int = 0, **settings: Any
    ) -> Fleet:
        return cls(controller, token, tmp, [], [], first, settings)

    def _config(self, i: int) -> AgentConfig:
        # Built as `mininova agent --controller URL --token T --driver fake --host H
        # --data-dir D` builds it, with the defaults of every other setting (or `settings`).
        host = f"bench{self.first + i:05d}"
        return AgentConfig(
            controller=self.controller,
            token=self.token,
            host=host,
            driver="fake",
            data_dir=self.tmp / "agents" / host,
            **self.settings,
        )

    async def _run(self, agent: Agent) -> None:
        await agent.driver.init_host()
        try:
            await agent.run()
        finally:
            agent.driver.set_event_callback(None)
            with contextlib.suppress(Exception):
                await agent.driver.cleanup_host()

    async def connect(self, count: int, concurrency: int, timeout: float) -> float:
        """Start `count` agents, at most `concurrency` not yet connected: seconds until all
        hellos were accepted."""
        sem = asyncio.Semaphore(concurrency)
        deadline = time.monotonic() + timeout

        async def one(i: int) -> None:
            async with sem:
                config = self._config(i)
                agent = Agent(config, create_driver(config))
                self.agents.append(agent)
                task = asyncio.create_task(self._run(agent), name=f"agent-{config.host}")
                self.tasks.append(task)
                waiter = asyncio.create_task(agent.connected.wait())
                left = max(0.1, deadline - time.monotonic())
                done, _ = await asyncio.wait(
                    {task, waiter}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                if task in done:
                    raise RuntimeError(f"agent {config.host} stopped: {task.exception()!r}")
                if waiter not in done:
                    raise RuntimeError(f"agent {config.host} not connected after {timeout}s")

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return time.perf_counter() - t0

    def connected(self) -> int:
        return sum(1 for a in self.agents if a.connected.is_set())

    def sessions(self) -> int:
        return sum(a.sessions for a in self.agents)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


# -- main ------------------------------------------------------------------------------------


def serve_env(tmp: Path) -> dict[str, str]:
    """The e2e environment, minus its short test intervals: serve keeps its defaults."""
    env = base_env(tmp)
    for key in list(env):
        if key.startswith("MININOVA_"):
            del env[key]
    return env


async def hosts_up(serve: Serve) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        api = Api(session, serve.url)
        await api.login(serve.password)
        body = await api.call("GET", "/compute/v2.1/os-services?binary=nova-compute", (200,))
        return sum(1 for s in body["services"] if s["state"] == "up")


async def profile(pid: int, out: str, seconds: float) -> None:
    """py-spy (from the venv) on serve, after the measured window: raw folded stacks to `out`."""
    py_spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds))]
    cmd += ["--format", "raw", "-o", out, "--nonblocking"]
    print(f"profiling serve for {seconds:g} s: {' '.join(cmd)}")
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        print(f"py-spy failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")


async def run(serve: Serve, tmp: Path, args: argparse.Namespace) -> None:
    assert serve.proc is not None
    pid = serve.proc.pid
    me = os.getpid()
    await asyncio.sleep(SETTLE_SECONDS)

    rss0 = rss_kib(pid)
    print(f"reference window: {args.idle_seconds:g} s with 0 agents ...")
    cpu0 = await cpu_window({"serve": pid}, args.idle_seconds)

    fleet = Fleet.create(serve.url, serve.token, tmp)
    try:
        print(f"connecting {args.agents} agents (at most {args.connect_concurrency} dialing) ...")
        rss_before_connect = rss_kib(pid)
        connect_s = await fleet.connect(args.agents, args.connect_concurrency, args.timeout)
        await asyncio.sleep(SETTLE_SECONDS)
        rss_n = rss_kib(pid)
        print(f"measuring window: {args.idle_seconds:g} s with {args.agents} agents ...")
        sessions0 = fleet.sessions()
        cpu_n = await cpu_window({"serve": pid, "bench": me}, args.idle_seconds)
        rss_n_after = rss_kib(pid)
        still = fleet.connected()
        reconnects = fleet.sessions() - sessions0
        up = await hosts_up(serve)
        if args.profile:
            await profile(pid, args.profile, args.profile_seconds)
    finally:
        print(f"stopping {len(fleet.tasks)} agents ...")
        await fleet.stop()

    n = args.agents
    mb = 1024.0
    interval = ServeConfig().heartbeat_interval
    print(
        f"agents={n} idle_seconds={args.idle_seconds:g} heartbeat_interval={interval:g}s "
        f"connect_concurrency={args.connect_concurrency} (real Agent + FakeDriver, one process)"
    )
    print(f"  connect all            {connect_s:.2f} s ({n / connect_s:.0f} agents/s)")
    print(f"  connected after window {still}/{n} (reconnects during window: {reconnects})")
    print(f"  hosts up (os-services) {up}/{n}")
    print(f"  serve RSS, N agents    {rss_n / mb:.1f} MB (after the window {rss_n_after / mb:.1f})")
    print(f"  serve idle CPU, N      {cpu_n['serve']:.2f} %")
    print(f"  bench process CPU      {cpu_n['bench']:.1f} % (the {n} agents; 100 % = one core)")
    print("reference: serve with 0 agents, same run")
    print(
        f"  serve RSS, 0 agents    {rss0 / mb:.1f} MB (just before connecting {rss_before_connect / mb:.1f})"
    )
    print(f"  serve idle CPU, 0      {cpu0['serve']:.2f} %")
    print(
        f"  ratio RSS N / 0        {rss_n / rss0:.2f}x; +{(rss_n - rss0) / mb:.1f} MB = "
        f"{(rss_n - rss0) / n:.1f} KiB per link ({(rss_n_after - rss0) / n:.1f} after the window)"
    )
    ratio = f"{cpu_n['serve'] / cpu0['serve']:.1f}x" if cpu0["serve"] > 0 else "n/a (0 % idle)"
    print(
        f"  ratio CPU N / 0        {ratio}; +{cpu_n['serve'] - cpu0['serve']:.2f} points = "
        f"{(cpu_n['serve'] - cpu0['serve']) / n * 1000:.2f} m% per link"
    )
    print(
        f"  targets (measured, not asserted): RSS <= 100 MB: {rss_n_after / mb:.1f} MB; "
        f"idle CPU <= 5 %: {cpu_n['serve']:.2f} %"
    )


async def run_fleet(args: argparse.Namespace) -> None:
    """--fleet: connect the agents, say `ready`, run until a signal or stdin's EOF."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def stdin_eof() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=stdin_eof, daemon=True).start()
    fleet = Fleet.create(
        args.controller,
        args.token,
        Path(args.data_dir),
        args.first,
        fake_vcpus=args.fake_vcpus,
        fake_memory_mb=args.fake_memory_mb,
        fake_disk_gb=args.fake_disk_gb,
        fake_boot_seconds=args.fake_boot_seconds,
    )
    try:
        connect = asyncio.create_task(
            fleet.connect(args.agents, args.connect_concurrency, args.timeout)
        )
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({connect, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if connect.done():
            print(f"ready {args.agents} {connect.result():.2f}", flush=True)
            await stopping
        else:
            connect.cancel()
        stopping.cancel()
    finally:
        await fleet.stop()
        print(f"fleet bench{args.first:05d}+{args.agents}: stopped", file=sys.stderr)


def main_fleet(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.controller or not args.token or not args.data_dir:
        parser.error("--fleet needs --controller, --token and --data-dir")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.umask(0o077)
    asyncio.run(run_fleet(args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--connect-concurrency", type=int, default=100, help="agents dialing at the same time"
    )
    parser.add_argument("--timeout", type=float, default=300, help="to connect all agents (s)")
    parser.add_argument(
        "--profile", metavar="FILE", help="py-spy serve after the window (raw stacks to FILE)"
    )
    parser.add_argument("--profile-seconds", type=float, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    fleet = parser.add_argument_group("--fleet (helper of boot_bench.py --hosts)")
    fleet.add_argument("--fleet", action="store_true", help="only run the agents (see above)")
    fleet.add_argument("--controller", help="serve's URL")
    fleet.add_argument("--token", help="the join token serve printed")
    fleet.add_argument("--data-dir", help="agents' data directories go under DATA_DIR/agents")
    fleet.add_argument("--first", type=int, default=0, help="number of the first host name")
    fleet.add_argument("--fake-vcpus", type=int, default=AgentConfig.fake_vcpus)
    fleet.add_argument("--fake-memory-mb", type=int, default=AgentConfig.fake_memory_mb)
    fleet.add_argument("--fake-disk-gb", type=int, default=AgentConfig.fake_disk_gb)
    fleet.add_argument("--fake-boot-seconds", type=float, default=AgentConfig.fake_boot_seconds)
    args = parser.parse_args()
    if args.fleet:
        main_fleet(parser, args)
        return
    if args.agents < 1 or args.idle_seconds <= 0 or args.connect_concurrency < 1:
        parser.error("--agents, --idle-seconds and --connect-concurrency must be positive")
    interruptible()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    soft, _ = raise_nofile(args.agents + 1024)
    if soft != resource.RLIM_INFINITY and soft < args.agents + 64:
        parser.error(f"open-file limit {soft} is too low for {args.agents} agents")
    os.umask(0o077)
    tmp = Path(tempfile.mkdtemp(prefix="mininova-bench-"))
    serve = Serve(tmp / "data", free_port(), serve_env(tmp))
    try:
        print("starting mininova serve ...")
        serve.start()
        asyncio.run(run(serve, tmp, args))
    finally:
        with contextlib.suppress(Exception):
            serve.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
