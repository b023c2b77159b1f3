"""Multi-host lab: serve on a non-loopback address turns HTTPS on by itself, a compute host in
another network namespace joins with the printed command, and every way of joining wrongly
is refused without changing the controller's state.

The tests run in file order against one serve and one real libvirt host (see conftest.py):
the real host boots one guest (vm-lab), whose console is used over HTTPS in Chromium; short
fake-driver agents then try a wrong CA pin, plain ws://, revoked and expired join tokens, the
enrolled name of the real host, and a revoked host credential.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import re
import shutil
import ssl
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.procs import BIN
from tests.lab.conftest import HOST2, Lab, RealHost
from tests.libvirt_e2e.conftest import make_ed25519_public_key
from tests.libvirt_e2e.host import TINY_IMAGE, domain_names, domstate

pytestmark = pytest.mark.netns

FLAVOR = "m1.micro"  # the tiny guest needs 128 MiB (see tests/libvirt_e2e)
BOOT_TIMEOUT = 240
VM = "vm-lab"
MININOVA_BIN = str(BIN / "mininova")


# -- helpers ----------------------------------------------------------------------------------


def _console(lab: Lab, name: str) -> str:
    return lab.osc("console", "log", "show", name).stdout.replace("\r", "")


def _wait_console(lab: Lab, name: str, needle: str, count: int = 1) -> str:
    out = ""

    def seen() -> bool:
        nonlocal out
        out = _console(lab, name)
        return out.count(needle) >= count

    try:
        lab.wait(seen, BOOT_TIMEOUT, f"{needle!r} x{count} on the console of {name}", interval=2)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- console log of {name} (tail) ---\n" + "\n".join(out.splitlines()[-25:])
        ) from None
    return out


def _wait_status(lab: Lab, name: str, status: str, timeout: float = BOOT_TIMEOUT) -> dict:
    last: dict = {}

    def done() -> bool:
        nonlocal last
        last = lab.osc_json("server", "show", name)
        if last["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"{name} went to ERROR: {last.get('fault')}{lab.logs()}")
        return last["status"] == status and last["OS-EXT-STS:task_state"] is None

    lab.wait(done, timeout, f"{name} to be {status}", interval=1)
    return last


def _next_instance_id(lab: Lab) -> int:
    if lab.database_url:  # PostgreSQL: the serial's sequence (last_value NULL until first use)
        rows = lab.rows(
            "SELECT last_value AS seq FROM pg_sequences WHERE schemaname || '.' ||"
            " sequencename = pg_get_serial_sequence('instances', 'id')"
        )
    else:
        rows = lab.rows("SELECT seq FROM sqlite_sequence WHERE name = 'instances'")
    return ((rows[0]["seq"] or 0) if rows else 0) + 1


def _step_past_foreign_domain_names(lab: Lab, margin: int = 3) -> int:
    """Make this cloud's next instance number exceed every `instance-XXXXXXXX` domain another
    mininova cloud keeps on this libvirtd (e.g. a concurrent tests/libvirt_e2e run).

    Domain names are `instance-<cloud-local id>`, so two clouds sharing one libvirtd collide
    ("domain 'instance-00000001' already exists with uuid ..."): a product limitation reported
    with this module. Instances that cannot be scheduled (disk too large) use up the numbers,
    and are deleted again. Returns how many numbers were skipped (0 on a quiet host)."""
    ours = {r["id"] for r in lab.rows("SELECT id FROM instances")}
    foreign = {
        int(name[len("instance-") :], 16)
        for name in domain_names()
        if re.fullmatch(r"instance-[0-9a-f]{8}", name)
    } - ours

    def last_to_skip() -> int:
        nxt = _next_instance_id(lab)
        if foreign and max(foreign) + margin - nxt < 40:
            return max(foreign) + margin  # past all of them, with room for their next ones
        # Far-away numbers only: step over those right in front of us.
        blocked = [n for n in range(nxt, nxt + margin + 1) if n in foreign]
        return max(blocked) + margin if blocked else 0

    if last_to_skip() < _next_instance_id(lab):
        return 0
    lab.osc("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "100000", "lab-doomed")
    skipped = 0
    while (gap := last_to_skip() + 1 - _next_instance_id(lab)) > 0:
        count = str(min(gap, 8))
        lab.osc(
            "server", "create", "--image", "tiny", "--flavor", "lab-doomed",
            "--min", count, "--max", count, "doomed",
        )  # fmt: skip
        doomed = [s for s in lab.osc_json("server", "list") if s["Name"].startswith("doomed")]
        lab.facts.setdefault("uuids", set()).update(s["ID"] for s in doomed)
        lab.wait(
            lambda: all(
                s["Status"] == "ERROR"
                for s in lab.osc_json("server", "list")
                if s["Name"].startswith("doomed")
            ),
            60,
            "the unschedulable placeholder servers to fail",
        )
        lab.osc("server", "delete", "--wait", *(s["ID"] for s in doomed))
        skipped += len(doomed)
    lab.osc("flavor", "delete", "lab-doomed")
    return skipped


class Impostor:
    """A controller impostor on our root-side veth address: its own self-signed CA, served at
    /agent/ca.pem over HTTPS (or, with `tls=False`, a bare HTTP listener). It records every
    connection and every request with its headers, so a test can see what an agent sent."""

    def __init__(self, lab: Lab, tls: bool = True) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self.ca_pem = b""
        impostor = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                impostor.requests.append((self.path, dict(self.headers.items())))
                found = self.path == "/agent/ca.pem"
                body = impostor.ca_pem if found else b"no"
                self.send_response(200 if found else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):  # noqa: ANN202 - socketserver API
                impostor.connections += 1  # before the TLS handshake, which may fail
                return super().get_request()

        self.server = Server((lab.ctl_ip, 0), Handler)
        if tls:
            self.ca_pem = self._self_signed(lab)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(lab.root / "impostor.pem", lab.root / "impostor.key")
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://{lab.ctl_ip}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def _self_signed(lab: Lab) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the cloud CA")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(lab.ctl_ip))]),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
        (lab.root / "impostor.pem").write_bytes(pem)
        (lab.root / "impostor.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return pem

    @property
    def fingerprint(self) -> str:
        cert = x509.load_pem_x509_certificate(self.ca_pem)
        return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def _assert_serve_warning(lab: Lab, offset: int, message: str) -> None:
    """serve logged `message` (past byte `offset`) at WARNING level."""
    lines = [line for line in lab.serve_log(offset).splitlines() if message in line]
    assert lines, f"serve did not log {message!r}{lab.logs()}"
    assert all(" WARNING " in line for line in lines), lines


def _flip_last_hex(pin: str) -> str:
    return pin[:-1] + ("0" if pin[-1] != "0" else "1")


def _refused_link_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "refused agent link" in line]


def _rfb_screen_colors(lab: Lab, url: str) -> int:
    """Connect to the console websocket of `url` over wss (the cloud CA), do the RFB
    handshake and return the number of distinct colours of one full framebuffer update."""
    import asyncio

    from tests.console.rfbclient import connect, rfb_handshake

    token = parse_qs(urlsplit(url).query)["token"][0]
    ws_url = lab.url.replace("https://", "wss://", 1) + f"/console/websockify?token={token}"

    async def run() -> int:
        trust = ssl.create_default_context(cafile=str(lab.ca_file))
        connector = aiohttp.TCPConnector(ssl=trust)
        async with aiohttp.ClientSession(connector=connector) as session:
            ws = await connect(session, ws_url, headers={"Origin": lab.url})
            try:
                rfb = await rfb_handshake(ws)
                await rfb.request_update()
                rects = await rfb.read_update(timeout=20)
                colors = {data[i : i + 4] for *_, data in rects for i in range(0, len(data), 4)}
                return len(colors)
            finally:
                await ws.close()

    return asyncio.run(run())


# -- 1: serve on a non-loopback address is HTTPS with its own CA ------------------------------


def test_serve_defaults_to_https(lab: Lab) -> None:
    assert f"mininova is running at {lab.url}\n" in lab.banner, lab.banner
    join = lab.join
    assert join["url"] == lab.url, lab.join_line

    ca = x509.load_pem_x509_certificate(lab.ca_file.read_bytes())
    assert join["pin"] == "sha256:" + ca.fingerprint(hashes.SHA256()).hex(), (
        "the printed --ca-cert-hash is not the sha256 of the CA certificate"
    )
    ca_ok = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_ok, "tls/ca.pem is not a CA certificate"
    server = x509.load_pem_x509_certificate(lab.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(lab.ctl_ip) in sans.get_values_for_type(x509.IPAddress), sans

    # HTTPS verified against the cloud CA answers (the fixture already waited for it); plain
    # HTTP on the same port does not.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{lab.ctl_ip}:{lab.port}/healthcheck", timeout=5)

    clouds = (lab.data_dir / "clouds.yaml").read_text()
    assert f"auth_url: {lab.url}/identity/v3" in clouds, clouds
    assert "auth_url: https://" in clouds
    assert f"cacert: {lab.ca_file}" in clouds, clouds
    openrc = (lab.data_dir / "openrc").read_text()
    assert f"export OS_AUTH_URL={lab.url}/identity/v3" in openrc, openrc
    assert f"export OS_CACERT={lab.ca_file}" in openrc, openrc
    assert "password=" in (lab.data_dir / "admin-credentials").read_text()

    # The openstack CLI with nothing but clouds.yaml talks HTTPS, trusting the cloud CA.
    catalog = lab.osc_json("catalog", "list")
    urls = [endpoint["url"] for service in catalog for endpoint in service["Endpoints"]]
    assert urls and all(u == lab.url or u.startswith(f"{lab.url}/") for u in urls), catalog


def test_token_create_prints_join_command(lab: Lab) -> None:
    secret, token_id, out = lab.token_create("--uses", "1")
    assert f"# id {token_id}," in out, out
    expected = (
        f"# join with: mininova agent --controller {lab.url} --token {secret}"
        f" --ca-cert-hash {lab.pin} --driver libvirt --host $(hostname)"
    )
    assert expected in out.splitlines(), f"printed {out.splitlines()[-1]!r}, not {expected!r}"


# -- 2: the printed command, verbatim, from the other namespace -------------------------------


@pytest.mark.libvirt
def test_printed_join_command_enrols_host2(lab: Lab, host2: RealHost) -> None:
    log = host2.agent.text()
    assert f"controller CA {lab.pin} pinned and stored in {host2.data_dir}/controller-ca.pem" in log
    assert f"enrolled as {HOST2}; host credential stored in {host2.data_dir}" in log, log
    assert f"connected to wss://{lab.ctl_ip}:{lab.port}/agent as {HOST2}" in log, log

    stored_ca = host2.data_dir / "controller-ca.pem"
    ca = x509.load_pem_x509_certificate(stored_ca.read_bytes())
    assert "sha256:" + ca.fingerprint(hashes.SHA256()).hex() == lab.pin
    cred_file = host2.data_dir / "credential.json"
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    cred = json.loads(cred_file.read_text())
    assert cred["host"] == HOST2 and cred["credential"].startswith("mnh_"), cred
    if not host2.default_data_dir_existed:
        assert not Path("/var/lib/mininova-agent").exists(), (
            "the agent ignored MININOVA_AGENT_DATA_DIR and wrote /var/lib/mininova-agent"
        )

    token_id = lab.join_token[4:12]
    (cred_row,) = lab.host_state(HOST2)["host_credentials"]
    assert cred_row["revoked_at"] is None and cred_row["join_token_id"] == token_id, cred_row
    assert lab.token_row(token_id)["used"] == 1
    (node,) = lab.host_state(HOST2)["compute_nodes"]
    assert node["driver"] == "libvirt" and node["connected"] == 1, node
    assert f"host {HOST2} enrolled from {lab.ns_ip}" in lab.serve_log(), lab.logs()


# -- 3: a real guest on host2, driven over HTTPS ----------------------------------------------


@pytest.fixture(scope="module")
def vm(lab: Lab, host2: RealHost) -> dict:
    """vm-lab, booted on lab-host2 with image `tiny` and keypair `k` (all over HTTPS)."""
    lab.osc_json(
        "image",
        "create",
        "--file",
        str(TINY_IMAGE),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
        "tiny",
    )
    key_file = lab.root / "k.pub"
    _key, fingerprint = make_ed25519_public_key(key_file)
    lab.osc("keypair", "create", "--public-key", str(key_file), "k")
    skipped = _step_past_foreign_domain_names(lab)
    if skipped:
        print(f"skipped {skipped} instance numbers used by another cloud's libvirt domains")
    server = lab.osc_json(
        "server",
        "create",
        "--image",
        "tiny",
        "--flavor",
        FLAVOR,
        "--key-name",
        "k",
        "--wait",
        VM,
        timeout=BOOT_TIMEOUT + 60,
    )
    lab.facts.setdefault("uuids", set()).add(server["id"])
    return {"server": server, "fingerprint": fingerprint}


@pytest.mark.libvirt
def test_boot_guest_on_host2(lab: Lab, host2: RealHost, vm: dict) -> None:
    server, fingerprint = vm["server"], vm["fingerprint"]
    assert server["status"] == "ACTIVE", server
    assert server["OS-EXT-SRV-ATTR:host"] == HOST2, server
    out = _wait_console(lab, VM, "boot done")
    lines = set(out.splitlines())
    assert f"hostname={VM}" in lines, out
    assert f"uuid={server['id']}" in lines, out
    assert f"ssh_key_fingerprint={fingerprint}" in lines, out
    # The guest's files are in the agent's default instances directory for its host name.
    inst = host2.instances / server["id"]
    assert {p.name for p in inst.iterdir()} >= {"disk", "disk.config", "console.log"}, inst
    assert domstate(server["OS-EXT-SRV-ATTR:instance_name"]) == "running"
    # The agent fetched the image from the controller over HTTPS (verified by the pinned CA).
    assert f"from {lab.url}/image/v2/images/" in host2.agent.text(), host2.agent.text()


@pytest.mark.libvirt
@pytest.mark.browser
async def test_browser_console_over_https(lab: Lab, host2: RealHost, vm: dict) -> None:
    from tests.console.browser import browser_skip_reason, console_page

    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    url = lab.osc_json("console", "url", "show", "--novnc", VM)["url"]
    assert url.startswith(f"{lab.url}/"), url
    offset = len(host2.agent.text())
    try:
        async with console_page(url, server_cert=lab.server_cert) as console:
            screen = await console.wait_connected(timeout=40)
            pixels = Counter(screen.rgba[i : i + 4] for i in range(0, len(screen.rgba), 4))
            _bg, bg_count = pixels.most_common(1)[0]
            text_fraction = 1 - bg_count / (screen.width * screen.height)
            await console.page.screenshot(path=str(lab.root / "console.png"))
            assert text_fraction > 0.005, (
                f"console looks blank: {text_fraction:.4f} non-background pixels; "
                f"log={console.console_log}"
            )
    except AssertionError as exc:
        failed = [
            line
            for line in host2.agent.text()[offset:].splitlines()
            if "open_console_tunnel" in line and " ok " not in line
        ]
        if failed:  # e.g. VNC on the root namespace's 127.0.0.1, unreachable from host2's
            pytest.fail(
                "the agent in another network namespace cannot open the guest's"
                f" VNC endpoint: {exc}\n" + "\n".join(failed)
            )
        raise AssertionError(f"{exc}{lab.logs()}") from None


# -- 3b: ssh through the agent's own link, the host behind NAT -------------------------------

NAT_TABLE = "mnlab_nat"


def _nft_in_namespace(lab: Lab, script: str) -> None:
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ns, "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"nft in {lab.ns}: {proc.stderr}"


def _connects(host: str, port: int, netns: str | None = None) -> bool:
    """Whether a TCP connect to host:port succeeds within 3 s (from `netns` if given)."""
    code = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    cmd = (["ip", "netns", "exec", netns] if netns else []) + [sys.executable, "-c", code]
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


@pytest.mark.libvirt
def test_ssh_through_the_agent_behind_nat(lab: Lab, host2: RealHost, vm: dict) -> None:
    """host2 drops every connection it did not open (as a NAT does): nothing reaches it but
    the replies to its own outbound websocket. `mininova ssh` still gets a shell on its guest,
    and is refused with a clear message until the security group admits port 22."""
    if shutil.which("nft") is None:
        pytest.skip("host capability missing: nft (Debian package nftables) is not installed")
    if shutil.which("ssh") is None:
        pytest.skip("host capability missing: ssh client (openssh-client) is not installed")
    private_key = lab.root / "k"  # make_ed25519_public_key wrote it next to k.pub
    if not private_key.exists():
        pytest.skip("host capability missing: ssh-keygen (no private key for keypair k)")
    # host2 reaches its guests on this machine's libvirt network (192.168.122.0/24, served
    # from the root namespace) through its veth; libvirt's firewall would reject a routed
    # connection into virbr0, so admit ours (source: the address this lab created).
    guest_route = ("-n", lab.ns, "route", "replace", "192.168.122.0/24", "via", lab.ctl_ip)
    assert subprocess.run(["ip", *guest_route], capture_output=True).returncode == 0
    accept = ["LIBVIRT_FWI", "-s", lab.ns_ip, "-o", "virbr0", "-j", "ACCEPT"]
    subprocess.run(["iptables", "-I", *accept], check=True, capture_output=True)
    listener = subprocess.Popen(
        [
            "ip", "netns", "exec", lab.ns, sys.executable, "-c",
            "import socket,time\n"
            "s=socket.create_server(('0.0.0.0', 2222))\n"
            "time.sleep(600)\n",
        ]
    )  # fmt: skip
    try:
        lab.wait(lambda: _connects(lab.ns_ip, 2222, lab.ns), 20, "a listener inside host2")
        assert _connects(lab.ns_ip, 2222), "host2's listener should be reachable before NAT"
        _nft_in_namespace(
            lab,
            f"table inet {NAT_TABLE} {{\n"
            "  chain input { type filter hook input priority -50; policy accept;\n"
            "    iif lo accept; ct state established,related accept; ct state new drop; }\n"
            "}\n",
        )
        assert not _connects(lab.ns_ip, 2222), "host2 still accepts inbound connections"

        _wait_console(lab, VM, "sshd: listening on 22")
        command = [
            MININOVA_BIN, "ssh", f"root@{VM}", "-i", str(private_key), "-o", "BatchMode=yes",
            "cat /etc/hostname; echo behind-nat",
        ]  # fmt: skip
        refused = subprocess.run(
            command, env=lab.os_env, capture_output=True, text=True, timeout=120
        )
        assert refused.returncode != 0, refused.stdout
        assert "port 22" in refused.stderr and "security group rule create" in refused.stderr, (
            refused.stderr
        )
        lab.osc(
            "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
            "default",
        )  # fmt: skip
        proc = subprocess.run(command, env=lab.os_env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"mininova ssh failed: {proc.stderr}{lab.logs()}"
        assert proc.stdout.split() == [VM, "behind-nat"], proc.stdout
        assert "open_tcp_tunnel" in host2.agent.text(), host2.agent.text()
    finally:
        listener.kill()
        listener.wait(timeout=10)
        subprocess.run(
            ["ip", "netns", "exec", lab.ns, "nft", "delete", "table", "inet", NAT_TABLE],
            capture_output=True,
        )
        subprocess.run(["iptables", "-D", *accept], capture_output=True)


# -- 4a: a wrong CA pin stops the agent before any secret leaves it ---------------------------


def test_wrong_ca_pin_refused_before_any_secret(lab: Lab) -> None:
    secret, token_id, _ = lab.token_create()
    wrong = _flip_last_hex(lab.pin)
    offset = lab.serve_offset()
    agent = lab.fake_agent("lab-pin", secret, pin=wrong)
    assert agent.wait_exit() == 1, agent.text()
    log = agent.text()
    assert (
        f"agent lab-pin stops: controller CA fingerprint {lab.pin} does not match the pinned"
        f" {wrong}; nothing was sent to the controller"
    ) in log, log
    assert not _refused_link_lines(lab.serve_log(offset)), lab.logs()
    assert "lab-pin" not in lab.serve_log(offset), lab.logs()
    row = lab.token_row(token_id)
    assert row["used"] == 0 and row["revoked_at"] is None, row
    assert lab.host_state("lab-pin") == {"compute_nodes": [], "host_credentials": []}
    assert not (agent.data_dir / "controller-ca.pem").exists()
    assert not (agent.data_dir / "credential.json").exists()


def test_impostor_controller_gets_no_secret(lab: Lab) -> None:
    """The real pin against a server with another CA: it only gets one unauthenticated GET."""
    secret, token_id, _ = lab.token_create()
    impostor = Impostor(lab)
    try:
        agent = lab.fake_agent("lab-mitm", secret, controller=impostor.url)
        assert agent.wait_exit() == 1, agent.text()
    finally:
        impostor.close()
    assert (
        f"agent lab-mitm stops: controller CA fingerprint {impostor.fingerprint} does not match"
        f" the pinned {lab.pin}; nothing was sent to the controller"
    ) in agent.text(), agent.text()
    assert [path for path, _ in impostor.requests] == ["/agent/ca.pem"], impostor.requests
    ((_, headers),) = impostor.requests
    assert "authorization" not in {k.lower() for k in headers}, headers
    assert not any(secret in v or "mnj_" in v for v in headers.values()), headers
    assert impostor.connections == 1, "the agent connected again after the CA did not match"
    assert lab.token_row(token_id)["used"] == 0


# -- 4b: plain ws:// to a TLS controller -------------------------------------------------------


def test_plain_ws_refused_when_tls_is_on(lab: Lab) -> None:
    secret, token_id, _ = lab.token_create()
    offset = lab.serve_offset()
    agent = lab.fake_agent(
        "lab-plain", secret, controller=f"http://{lab.ctl_ip}:{lab.port}", netns=True
    )
    assert agent.wait_exit() == 1, agent.text()
    log = agent.text()
    assert f"agent lab-plain stops: refusing plain ws:// to {lab.ctl_ip}: " in log, log
    assert not _refused_link_lines(lab.serve_log(offset)), lab.logs()
    assert lab.token_row(token_id)["used"] == 0
    assert lab.host_state("lab-plain") == {"compute_nodes": [], "host_credentials": []}
    assert not (agent.data_dir / "credential.json").exists()

    # Nothing at all leaves the agent: a listener at the plain URL sees no connection.
    listener = Impostor(lab, tls=False)
    try:
        agent = lab.fake_agent("lab-plain", secret, controller=listener.url)
        assert agent.wait_exit() == 1, agent.text()
    finally:
        listener.close()
    assert f"refusing plain ws:// to {lab.ctl_ip}: " in agent.text(), agent.text()
    assert listener.connections == 0 and not listener.requests, listener.requests


# -- 4c: revoked and expired join tokens ------------------------------------------------------


def _refused_token(lab: Lab, host: str, secret: str, token_id: str, state: str) -> None:
    before = lab.token_row(token_id)
    offset = lab.serve_offset()
    agent = lab.fake_agent(host, secret)
    assert agent.wait_exit() == 1, agent.text()
    log = agent.text()
    assert f"agent {host} stops: controller refused the join token" in log, log
    assert f"join token {token_id} is {state}" in log, log  # the reason reaches the agent
    _assert_serve_warning(
        lab, offset, f"refused agent link from {lab.ns_ip}: join token {token_id} is {state}"
    )
    assert lab.token_row(token_id) == before
    assert lab.host_state(host) == {"compute_nodes": [], "host_credentials": []}
    assert not (agent.data_dir / "credential.json").exists()


def test_revoked_join_token_refused(lab: Lab) -> None:
    secret, token_id, _ = lab.token_create()
    out = lab.mininova("token", "revoke", token_id, "--data-dir", str(lab.data_dir)).stdout
    assert f"join token {token_id} revoked" in out, out
    listed = lab.mininova("token", "list", "--data-dir", str(lab.data_dir)).stdout
    assert any(line.split()[:2] == [token_id, "revoked"] for line in listed.splitlines()), listed
    assert lab.token_row(token_id)["revoked_at"] is not None
    _refused_token(lab, "lab-revoked", secret, token_id, "revoked")


def test_expired_join_token_refused(lab: Lab) -> None:
    secret, token_id, _ = lab.token_create("--ttl", "1")
    time.sleep(2)  # real time: serve runs in another process, out of reach of a fake clock
    listed = lab.mininova("token", "list", "--data-dir", str(lab.data_dir)).stdout
    assert any(line.split()[:2] == [token_id, "expired"] for line in listed.splitlines()), listed
    _refused_token(lab, "lab-expired", secret, token_id, "expired")


# -- 4d: nobody else may take the enrolled name of the real host ------------------------------


@pytest.mark.libvirt
def test_enrolled_name_cannot_be_claimed(lab: Lab, host2: RealHost, vm: dict) -> None:
    secret, token_id, _ = lab.token_create()
    token_before = lab.token_row(token_id)
    (cred_before,) = lab.host_state(HOST2)["host_credentials"]
    (node_before,) = lab.host_state(HOST2)["compute_nodes"]
    offset, agent_offset = lab.serve_offset(), len(host2.agent.text())

    impostor = lab.fake_agent(HOST2, secret)
    assert impostor.wait_exit() == 1, impostor.text()
    reason = f"host name '{HOST2}' is already enrolled; only its own credential may use it"
    assert f"agent {HOST2} stops: controller refused this host: {reason}" in impostor.text()
    _assert_serve_warning(
        lab, offset, f"refused enrolment of host '{HOST2}' from {lab.ns_ip}: {reason}"
    )

    assert lab.token_row(token_id) == token_before
    (cred_after,) = lab.host_state(HOST2)["host_credentials"]
    assert cred_after == cred_before
    (node_after,) = lab.host_state(HOST2)["compute_nodes"]
    keep = ("driver", "hypervisor_type", "vcpus", "memory_mb", "created_at", "connected")
    assert {k: node_after[k] for k in keep} == {k: node_before[k] for k in keep}, node_after
    assert not (impostor.data_dir / "credential.json").exists()

    # The real host kept its link: no reconnect, no disconnect, and it still takes orders.
    assert host2.agent.proc.poll() is None, host2.agent.text()
    assert "connected to " not in host2.agent.text()[agent_offset:], host2.agent.text()
    assert f"agent {HOST2} disconnected" not in lab.serve_log(offset), lab.logs()
    boots = _wait_console(lab, VM, "boot done").count("boot done")
    lab.osc("server", "reboot", "--hard", VM)
    shown = _wait_status(lab, VM, "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == HOST2, shown
    _wait_console(lab, VM, "boot done", boots + 1)

    # ...and its console still works (a new URL, the RFB handshake over wss).
    url = lab.osc_json("console", "url", "show", "--novnc", VM)["url"]
    try:
        colors = _rfb_screen_colors(lab, url)
    except Exception as exc:
        pytest.fail(
            f"console of {VM} on {HOST2} does not connect after the refused impostor: "
            f"{type(exc).__name__}: {exc}{lab.logs()}"
        )
    assert colors > 1, "the guest's VNC screen is blank"


# -- 4e: a revoked host credential ------------------------------------------------------------


def test_revoked_host_credential(lab: Lab) -> None:
    host = "lab-fake"
    secret, token_id, _ = lab.token_create("--uses", "1")
    data_dir = lab.root / "agents" / host
    agent = lab.fake_agent(host, secret, netns=False, data_dir=data_dir)

    def up() -> bool:
        if agent.proc.poll() is not None:
            raise AssertionError(f"{host} exited: {agent.text()}")
        return f"connected to wss://{lab.ctl_ip}:{lab.port}/agent as {host}" in agent.text()

    lab.wait(up, 60, f"{host} to enrol")
    cred_file = data_dir / "credential.json"
    assert stat.S_IMODE(cred_file.stat().st_mode) == 0o600
    assert lab.token_row(token_id)["used"] == 1
    assert lab.token_row(token_id)["uses_left"] == 0

    # A later start uses the stored credential only (the one-use token is used up by now).
    agent.stop()
    offset = lab.serve_offset()
    agent = lab.fake_agent(host, secret, netns=False, data_dir=data_dir)
    lab.wait(up, 60, f"{host} to reconnect with its credential")
    assert not _refused_link_lines(lab.serve_log(offset)), lab.logs()
    assert lab.token_row(token_id)["used"] == 1

    services = lab.osc_json("compute", "service", "list", "--service", "nova-compute")
    (svc,) = [s for s in services if s["Host"] == host]
    offset = lab.serve_offset()
    lab.osc("compute", "service", "delete", str(svc["ID"]))

    assert agent.wait_exit(30) == 1, agent.text()
    assert f"agent {host} stops: controller refused this host's credential" in agent.text()
    _assert_serve_warning(
        lab,
        offset,
        f"refused agent link from {lab.ctl_ip}: the credential of host '{host}' was revoked",
    )
    (cred,) = lab.host_state(host)["host_credentials"]
    assert cred["revoked_at"] is not None, cred
    assert lab.host_state(host)["compute_nodes"] == [], "the refused agent came back"
    services = lab.osc_json("compute", "service", "list", "--service", "nova-compute")
    assert host not in {s["Host"] for s in services}, services
