"""The README, exactly as a new user types it, as root, with every default path.

`./dev serve` (no --data-dir, default port 8780) runs serve with its local libvirt agent; the
README tour reaches ACTIVE on a real guest whose console shows in Chromium. Then the join
command serve printed runs verbatim on "another host" (a UTS namespace with its own host name,
default agent paths) and boots a guest there too. Finally every file both created is checked
for its mode, and the database for clear-text secrets.

Whatever lives in the default directories before the test is moved aside and put back after.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mininova.paths import qemu_identity
from mininova.virt.libvirt.firewall import table_name
from tests.console.browser import browser_skip_reason, console_page
from tests.e2e.procs import BIN, wait_until
from tests.libvirt_e2e.conftest import make_ed25519_public_key
from tests.libvirt_e2e.host import REPO, host_skip_reason, purge_domains, tail

pytestmark = [pytest.mark.libvirt, pytest.mark.browser]

LOCAL_HOST = socket.gethostname()
HOST2 = "readme-host2"
DEFAULTS = [
    Path("/var/lib/mininova"),
    Path("/var/lib/mininova-agent"),
    Path(f"/var/lib/libvirt/mininova/{LOCAL_HOST}"),
    Path(f"/var/lib/libvirt/mininova/{HOST2}"),
]
SERVE_DIR = DEFAULTS[0]
AGENT_DIR = DEFAULTS[1]
# The agents' host firewalls (virt/libvirt/firewall.py): they outlive an agent on purpose, so the
# test removes them, or they would drop traffic to a later test's guest that gets the same IP.
FIREWALL_TABLES = [table_name(LOCAL_HOST), table_name(HOST2)]


def _nft(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True)


def _save_firewall_tables() -> dict[str, str]:
    """The rulesets of FIREWALL_TABLES that exist now (a real cloud's), to put back after."""
    if shutil.which("nft") is None:
        return {}
    saved = {}
    for table in FIREWALL_TABLES:
        listed = _nft("list", "table", "ip", table)
        if listed.returncode == 0:
            saved[table] = listed.stdout
    return saved


def _restore_firewall_tables(saved: dict[str, str]) -> None:
    if shutil.which("nft") is None:
        return
    for table in FIREWALL_TABLES:
        _nft("delete", "table", "ip", table)
        if table in saved:
            _nft("-f", "-", stdin=saved[table])


@dataclass
class Readme:
    home: Path
    env: dict[str, str]
    serve: subprocess.Popen
    serve_log: Path
    join_command: str
    agent2: subprocess.Popen | None = None
    agent2_log: Path | None = None

    def sh(self, script: str, timeout: float = 300) -> str:
        """Run README lines in bash, in the checkout, with openrc sourced as the tour says."""
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f"source {SERVE_DIR}/openrc\n{script}"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, (
            f"{script!r} failed: {proc.stdout}\n{proc.stderr}\n--- serve ---\n"
            f"{tail(self.serve_log, 40)}"
        )
        return proc.stdout

    def json(self, script: str) -> dict:
        return json.loads(self.sh(script + " -f json"))

    def wait_active(self, name: str, timeout: float = 240) -> dict:
        def ready() -> dict | None:
            server = self.json(f"openstack server show {name}")
            assert server["status"] != "ERROR", server.get("fault")
            return server if server["status"] == "ACTIVE" else None

        return wait_until(ready, timeout, interval=2, what=f"{name} ACTIVE")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as serve binds (TIME_WAIT ok)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Readme]:
    if os.geteuid() != 0:
        pytest.skip("host capability missing: the README's default paths need root")
    for reason in (host_skip_reason(), browser_skip_reason()):
        if reason:
            pytest.skip(reason)
    if shutil.which("unshare") is None:
        pytest.skip("host capability missing: unshare (util-linux) not installed")
    if not _port_free(8780):
        pytest.skip("host capability missing: the default port 8780 is in use on this host")
    stamp = f"pre-test-{int(time.time())}"
    firewall_tables = _save_firewall_tables()
    moved: list[tuple[Path, Path]] = []
    for path in DEFAULTS:
        if path.exists():
            aside = path.with_name(f"{path.name}.{stamp}")
            path.rename(aside)
            moved.append((path, aside))
    home = tmp_path_factory.mktemp("home")
    (home / ".ssh").mkdir(mode=0o700)
    make_ed25519_public_key(home / ".ssh" / "id_ed25519.pub")
    # README defaults verbatim: SQLite in /var/lib/mininova in both test backends (no MININOVA_*).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "MININOVA_"))}
    env.update({"HOME": str(home), "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"})
    log = home / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen(
            ["./dev", "serve"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    state = Readme(home, env, serve, log, "")
    try:

        def banner() -> str | None:
            assert serve.poll() is None, f"./dev serve exited:\n{tail(log, 60)}"
            text = log.read_text(errors="replace")
            match = re.search(r"^\s+(mininova agent --controller .*)$", text, re.MULTILINE)
            return match.group(1) if match and "local agent:" in text else None

        state.join_command = wait_until(banner, 900, interval=1, what="./dev serve banner")
        yield state
    finally:
        ids: set[str] = set()
        with contextlib.suppress(Exception):
            servers = json.loads(state.sh("openstack server list --all-projects -f json"))
            ids = {s["ID"] for s in servers}
        for proc in (state.agent2, serve):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        purge_domains(uuids=ids)
        _restore_firewall_tables(firewall_tables)
        for path in DEFAULTS:
            shutil.rmtree(path, ignore_errors=True)
        for path, aside in moved:
            aside.rename(path)


async def _console_shows_guest(url: str) -> None:
    async with console_page(url) as console:
        screen = await console.wait_connected(timeout=60)
        pixels = Counter(screen.rgba[i : i + 4] for i in range(0, len(screen.rgba), 4))
        text_fraction = 1 - pixels.most_common(1)[0][1] / (screen.width * screen.height)
        assert text_fraction > 0.005, f"console looks blank; log={console.console_log}"
        assert await console.state() == "connected"


async def test_readme_tour_with_default_paths(readme: Readme) -> None:
    text = readme.serve_log.read_text()
    assert "running at http://127.0.0.1:8780" in text
    assert f"password in {SERVE_DIR}/admin-credentials" in text
    assert "(libvirt driver), connected" in text, tail(readme.serve_log, 30)
    readme.sh(
        "openstack image create --file examples/images/out/tiny.qcow2 --disk-format qcow2 tiny\n"
        "openstack keypair create --public-key ~/.ssh/id_ed25519.pub mykey\n"
        "openstack server create --image tiny --flavor m1.micro --key-name mykey --wait vm1",
        timeout=400,
    )
    server = readme.json("openstack server show vm1")
    assert server["status"] == "ACTIVE", server
    assert server["OS-EXT-SRV-ATTR:host"] == LOCAL_HOST
    wait_until(
        lambda: "hostname=vm1" in readme.sh("openstack console log show vm1"),
        120,
        interval=2,
        what="the guest's identity line on its serial console",
    )
    url = readme.json("openstack console url show --novnc vm1")["url"]
    assert url.startswith("http://127.0.0.1:8780/ui/console.html?token=")
    await _console_shows_guest(url)
    await _dashboard_shows_server(text, "vm1")


async def _dashboard_shows_server(serve_output: str, name: str) -> None:
    """The printed dashboard URL, the admin password from the printed file: vm1 is listed."""
    from tests.ui.dashboard import browser, dashboard_skip_reason

    reason = dashboard_skip_reason()
    if reason:
        pytest.skip(reason)
    match = re.search(r"dashboard:\s+(\S+)", serve_output)
    assert match, f"serve printed no dashboard URL:\n{serve_output}"
    password = re.search(r"password=(\S+)", (SERVE_DIR / "admin-credentials").read_text())
    assert password
    base = match.group(1).removesuffix("/ui/")
    async with browser() as chromium:
        ui = await chromium.login(base, "admin", password.group(1), "admin")
        await ui.goto("servers")
        await ui.row(name).wait_status("ACTIVE", timeout=30)


async def test_printed_join_command_verbatim(readme: Readme) -> None:
    command = readme.join_command
    assert "--token mnj_" in command and command.endswith("--host $(hostname)")
    readme.agent2_log = readme.home / "agent2.log"
    with open(readme.agent2_log, "wb") as out:
        readme.agent2 = subprocess.Popen(
            ["unshare", "--uts", "bash", "-c", f"hostname {HOST2} && exec {command}"],
            cwd=readme.home,
            env=readme.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def host2_up() -> bool:
        assert readme.agent2 is not None and readme.agent2.poll() is None, tail(
            readme.agent2_log, 40
        )
        services = json.loads(
            readme.sh("openstack compute service list --service nova-compute -f json")
        )
        return any(s["Host"] == HOST2 and s["State"] == "up" for s in services)

    wait_until(host2_up, 180, interval=2, what=f"{HOST2} to join")
    readme.sh(
        "openstack server create --image tiny --flavor m1.micro --key-name mykey"
        f" --availability-zone nova:{HOST2} --wait vm2",
        timeout=400,
    )
    server = readme.json("openstack server show vm2")
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == HOST2, server
    url = readme.json("openstack console url show --novnc vm2")["url"]
    await _console_shows_guest(url)
    credential = json.loads((AGENT_DIR / "credential.json").read_text())
    assert credential["host"] == HOST2 and credential["credential"].startswith("mnh_")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_file_modes_and_no_clear_secrets(readme: Readme) -> None:
    """Every file serve and the agents made is private; guest files only for QEMU's group."""
    problems: list[str] = []
    for top in (SERVE_DIR, AGENT_DIR):
        assert _mode(top) == 0o700, f"{top}: {_mode(top):o}"
        for path in [top, *top.rglob("*")]:
            mode = _mode(path)
            if path.is_dir():
                if mode != 0o700:
                    problems.append(f"{path}: dir {mode:04o}")
            elif path.name in ("ca.pem", "server.pem") and path.parent.name == "tls":
                if mode & 0o022:
                    problems.append(f"{path}: certificate {mode:04o}")  # public, never writable
            elif mode != 0o600:
                problems.append(f"{path}: {mode:04o}")
    for name in ("mininova.sqlite", "mininova.sqlite-wal", "mininova.sqlite-shm"):
        assert (SERVE_DIR / name).exists(), name
    for name in ("admin-credentials", "clouds.yaml", "openrc", "agent/credential.json"):
        assert _mode(SERVE_DIR / name) == 0o600, name
    qemu = qemu_identity()
    assert qemu is not None, "no QEMU user on this host"
    for host in (LOCAL_HOST, HOST2):
        root = Path(f"/var/lib/libvirt/mininova/{host}")
        assert _mode(root) == 0o750, f"{root}: {_mode(root):o}"
        assert root.stat().st_gid == qemu.gid, f"{root} should carry the QEMU user's group"
        disks = list(root.glob("*/disk"))
        assert disks, f"no guest disk under {root}"
        for path in root.rglob("*"):
            mode = _mode(path)
            if stat.S_ISSOCK(path.lstat().st_mode) and not _mode(path.parent) & 0o007:
                continue  # QEMU's VNC socket: its directory already shuts other users out
            if mode & 0o007:
                problems.append(f"{path}: {mode:04o} (open to other users)")
            if path.name == "disk" and mode != 0o600:
                problems.append(f"{path}: overlay {mode:04o}")
            if path.name == "disk.config" and mode != 0o640:
                problems.append(f"{path}: config drive {mode:04o}")
            if path.parent.name == "_base" and not path.name.startswith(".") and mode != 0o640:
                problems.append(f"{path}: base image {mode:04o}")
    assert not problems, "\n".join(problems)
    password = re.search(r"password=(\S+)", (SERVE_DIR / "admin-credentials").read_text()).group(1)  # type: ignore[union-attr]
    secrets = {
        "admin password": password,
        "join token": re.search(r"--token (\S+)", readme.join_command).group(1),  # type: ignore[union-attr]
        "host credential": json.loads((AGENT_DIR / "credential.json").read_text())["credential"],
    }
    db = b"".join(
        (SERVE_DIR / n).read_bytes()
        for n in ("mininova.sqlite", "mininova.sqlite-wal")
        if (SERVE_DIR / n).exists()
    )
    leaked = [what for what, value in secrets.items() if value.encode() in db]
    assert not leaked, f"clear-text secrets in the database: {leaked}"
