#!/usr/bin/env python3
"""Run a bench against PostgreSQL: a throwaway server (the tests' kit) and a fresh database.

    .venv/bin/python bench/with_postgres.py bench/boot_bench.py --agents 20 ...

starts Debian's PostgreSQL binaries as a private server on loopback, creates a database, runs
the command with MININOVA_DATABASE_URL pointing at it (serve and the benches read it), then
stops the server and removes its files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kit.postgres import PostgresServer, find_pg_bin  # noqa: E402


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = find_pg_bin()
    if bin_dir is None:
        print("PostgreSQL server binaries not found (scripts/host-setup.sh installs them)")
        return 2
    server = PostgresServer(bin_dir)
    server.start()
    try:
        url = server.url(server.create_database(prefix="mininova_bench"))
        env = {**os.environ, "MININOVA_DATABASE_URL": url}
        print(f"PostgreSQL {bin_dir.parent.name} on port {server.port}", flush=True)
        command = sys.argv[1:]
        if command[0].endswith(".py"):
            command = [sys.executable, *command]
        return subprocess.call(command, env=env)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
