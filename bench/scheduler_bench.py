#!/usr/bin/env python3
"""Scheduler decision time with many hosts, in-process, on SQLite or a PostgreSQL URL.

H compute nodes are registered through the store (as agents' hellos do), then D servers are
scheduled one after another with `Scheduler.select_and_claim` (filter + weigh in memory, then
the claim's transaction in the database). Printed:

* `select_and_claim` p50 / p99 (the whole decision, claim included);
* `choose` p50 alone (the in-memory filter + weigh pass);
* the reference, measured in the same run on the same host states: the reference filters
  (`filter_host` for every host, then `weigh`) as the pre-issue-10 scheduler ran them on
  every decision, without its database reads — and the ratio between the two.

    .venv/bin/python bench/scheduler_bench.py [--hosts 1000] [--decisions 2000]
                                               [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mininova.config import ServeConfig  # noqa: E402
from mininova.scheduler import Request, Scheduler  # noqa: E402
from mininova.store import Store, hosts  # noqa: E402
from mininova.timeutil import now_iso  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mininova-sched-bench-") as tmp:
        store = Store(args.database_url or Path(tmp) / "bench.sqlite")
        await store.open()
        try:
            now = now_iso()
            async with store.transaction() as tx:
                for n in range(args.hosts):
                    resources = {"vcpus": 64, "memory_mb": 262144, "local_gb": 4000}
                    await hosts.node_connected(tx, f"host{n:05d}", resources, "fake", now)
            scheduler = Scheduler(store, ServeConfig())
            await scheduler.refresh()
            whole: list[float] = []
            chooses: list[float] = []
            references: list[float] = []
            for n in range(args.decisions):
                req = Request(f"bench-{n}", vcpus=1, memory_mb=512, disk_gb=1)
                if n % 10 == 0:  # the reference pass is slow: sample it
                    started = time.perf_counter()
                    expected = scheduler.states.reference_choice(req, None)
                    references.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    chosen = scheduler.states.choose(req, None)
                    chooses.append(time.perf_counter() - started)
                    assert chosen == expected, (chosen, expected)
                started = time.perf_counter()
                await scheduler.select_and_claim(req)
                whole.append(time.perf_counter() - started)
        finally:
            await store.close()
    backend = "postgresql" if args.database_url else "sqlite"
    ms = 1000.0
    print(f"hosts={args.hosts} decisions={args.decisions} backend={backend}")
    print(
        f"  select_and_claim   p50 {statistics.median(whole) * ms:.3f} ms"
        f"  p99 {percentile(whole, 0.99) * ms:.3f} ms"
    )
    print(f"  choose (memory)    p50 {statistics.median(chooses) * ms:.3f} ms")
    print(
        f"reference: filter_host + weigh over every host, p50 {statistics.median(references) * ms:.3f} ms"
    )
    print(
        f"  ratio reference / choose  {statistics.median(references) / statistics.median(chooses):.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MININOVA_DATABASE_URL", ""),
        help="default: MININOVA_DATABASE_URL, else SQLite in a temp dir",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
