#!/usr/bin/env python3
"""API read benchmark: GET /compute/v2.1/servers/detail vs a bare aiohttp handler.

With K servers ACTIVE on one fake-driver agent (`mininova serve` and `mininova agent` are
subprocesses on loopback), C concurrent clients (keep-alive connections) issue
GET /compute/v2.1/servers/detail (admin token, microversion 2.100) for T seconds.

The reference, started in the same run: a bare aiohttp app in its own process on loopback
whose one handler returns the very body mininova returned for that request (pre-rendered:
same servers, same bytes, application/json). The same load generator hits it for T seconds with
the same headers. The ratio reference / mininova is what our auth (token lookup + policy),
database reads and view rendering cost per request.

A repeated listing is served from the bodies serve keeps while nothing is written
(`mininova.api.response_cache`), so a third run measures mininova while a writer changes one
server's metadata every `--write-interval` seconds (each write makes the next listing a full
render): the rate a poller sees while the cloud is busy.

    .venv/bin/python bench/api_bench.py [--servers 50] [--clients 8] [--seconds 5]
                                        [--write-interval 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.boot_bench import (  # noqa: E402
    DATABASE_HELP,
    DATABASES,
    SERVERS,
    Api,
    Cloud,
    boot_many,
    interruptible,
    percentile,
)
from tests.e2e.procs import free_port, wait_until  # noqa: E402

DETAIL = SERVERS + "/detail"


# -- the reference server (runs in its own process: `api_bench.py --reference PORT FILE`) -----


def run_reference(port: int, body_file: Path) -> None:
    from aiohttp import web

    body = body_file.read_bytes()

    async def detail(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get(DETAIL, detail)
    app.router.add_get("/healthcheck", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


class Reference:
    def __init__(self, body: bytes, tmp: Path) -> None:
        self.body_file = tmp / "detail.json"
        self.body_file.write_bytes(body)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError("reference server exited")
        try:
            with urllib.request.urlopen(self.url + "/healthcheck", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def __enter__(self) -> Reference:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--reference", str(self.port), str(self.body_file)]
        )
        try:
            wait_until(self._healthy, 20, interval=0.1, what="the reference server")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# -- load generator -----------------------------------------------------------------------


async def load(
    url: str, headers: dict[str, str], clients: int, seconds: float, expect_bytes: int | None
) -> dict[str, float]:
    """C clients, each issuing GET back to back for `seconds`: req/s and latencies."""
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    latencies: list[float] = []
    errors = 0
    sizes: set[int] = set()
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url, headers=headers) as resp:
                    raw = await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - t0)
                sizes.add(len(raw))

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{errors} non-200 answers from {url}")
    if expect_bytes is not None and sizes != {expect_bytes}:
        print(f"  note: body sizes {sorted(sizes)} (expected {expect_bytes})")
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / wall,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


async def run(cloud: Cloud, args: argparse.Namespace) -> None:
    assert cloud.serve is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        api = Api(session, cloud.serve.url)
        token = await api.login(cloud.serve.password)
        try:
            await api.unlimited_quota(token["project"]["id"])
            await api.wait_hosts_up(1)
            image = await api.upload_image()
            _, _, views = await boot_many(api, image, args.servers, 16, 0.05, 120)
            bad = [v["name"] for v in views if v["status"] != "ACTIVE"]
            if bad:
                raise RuntimeError(f"not ACTIVE: {bad}")
            url = cloud.serve.url + DETAIL
            async with session.get(url, headers=api.headers) as resp:
                body = await resp.read()
                assert resp.status == 200, body[:300]
            count = len(json.loads(body)["servers"])
            print(f"{count} servers ACTIVE; GET {DETAIL} body = {len(body)} bytes")
            with Reference(body, cloud.tmp) as ref:
                results = {}
                for name, target in (("mininova", url), ("reference", ref.url + DETAIL)):
                    await load(target, api.headers, args.clients, args.warmup, len(body))
                    results[name] = await load(
                        target, api.headers, args.clients, args.seconds, len(body)
                    )
                writer = asyncio.create_task(
                    write_metadata(api, views[0]["id"], args.write_interval)
                )
                try:
                    results["writes"] = await load(
                        url, api.headers, args.clients, args.seconds, None
                    )
                finally:
                    writer.cancel()
                results["writes"]["writes"] = await writer  # it returns its count when cancelled
            report(args, len(body), count, results)
        finally:
            with contextlib.suppress(Exception):
                deleted = await asyncio.wait_for(api.delete_all(), 150)
                print(f"deleted {deleted} servers")


async def write_metadata(api: Api, uuid: str, interval: float) -> int:
    """PUT one metadata item on `uuid` every `interval` seconds until cancelled."""
    url = f"{api.base}{SERVERS}/{uuid}/metadata/tick"
    made = 0
    try:
        while True:
            body = {"meta": {"tick": f"{made:08d}"}}
            async with api.session.put(url, json=body, headers=api.headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"metadata write: {resp.status} {await resp.text()}")
            made += 1
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        return made


def report(
    args: argparse.Namespace, size: int, count: int, results: dict[str, dict[str, float]]
) -> None:
    print(f"servers={count} clients={args.clients} seconds={args.seconds} body={size} bytes")
    for name, r in results.items():
        label = {
            "mininova": "mininova serve (auth+DB+render)",
            "reference": "bare aiohttp, pre-rendered body",
            "writes": f"mininova, a write every {args.write_interval:g} s",
        }[name]
        print(
            f"  {label:34s} {r['rps']:8.1f} req/s   p50 {r['p50'] * 1000:6.1f} ms   "
            f"p99 {r['p99'] * 1000:6.1f} ms   ({r['requests']:.0f} requests)"
        )
    ratio = results["reference"]["rps"] / results["mininova"]["rps"]
    print(
        f"  ratio reference / mininova          {ratio:.2f}x  "
        f"(mininova reaches {1 / ratio:.0%} of the bare handler)"
    )
    if "writes" in results:
        busy = results["reference"]["rps"] / results["writes"]["rps"]
        made = results["writes"]["writes"]
        print(f"  ratio reference / mininova, writes   {busy:.2f}x  ({made:.0f} writes)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--reference":
        run_reference(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--write-interval", type=float, default=0.1, help="seconds between writes, third run"
    )
    parser.add_argument(
        "--boot-seconds", type=float, default=0.05, help="fake driver spawn time while setting up"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--database", choices=DATABASES, default="sqlite", help=DATABASE_HELP)
    args = parser.parse_args()
    if args.servers < 1 or args.clients < 1 or args.seconds <= 0:
        parser.error("--servers and --clients must be >= 1, --seconds > 0")
    interruptible()
    print(f"starting mininova serve ({args.database}) + 1 fake agent ...")
    with Cloud(
        agents=1,
        servers=args.servers,
        boot_seconds=args.boot_seconds,
        keep=args.keep,
        database=args.database,
    ) as cloud:
        asyncio.run(run(cloud, args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
