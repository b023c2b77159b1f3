"""The `mininova` command: `serve` (the controller), `agent` (a compute host), and the client
commands `tunnel`, `ssh` and `port-forward` (TCP to a guest through its agent)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from mininova import config as cfgmod


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@click.group()
@click.version_option(package_name="mininova")
def main() -> None:
    """mininova: a small, single-process OpenStack Nova for labs."""


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="State directory (database, images, clouds.yaml). Env MININOVA_DATA_DIR.",
)
@click.option("--listen", default=None, help="HOST:PORT to listen on (default 127.0.0.1:8780).")
@click.option(
    "--database-url",
    default=None,
    help="postgresql+asyncpg://USER:PASSWORD@HOST/DB (default: SQLite in the data dir)."
    " Env MININOVA_DATABASE_URL.",
)
@click.option("--public-url", default=None, help="URL clients and agents use to reach us.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="TOML configuration file.",
)
@click.option(
    "--local-agent",
    type=click.Choice(["fake", "libvirt"]),
    is_flag=False,
    flag_value="fake",
    default=None,
    help="Also run one agent in this process (joins over the same websocket).",
)
@click.option("--tls-cert", default=None, help="Certificate chain PEM (default: the cloud CA's).")
@click.option("--tls-key", default=None, help="Private key PEM for --tls-cert.")
@click.option(
    "--insecure-http",
    is_flag=True,
    default=None,
    help="Serve plain HTTP even when listening beyond loopback (not recommended).",
)
@click.option("--log-level", default=None)
def serve(
    data_dir: Path | None,
    listen: str | None,
    database_url: str | None,
    public_url: str | None,
    config_file: Path | None,
    local_agent: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    insecure_http: bool | None,
    log_level: str | None,
) -> None:
    """Run the controller: api, conductor, scheduler, consoleauth and the console proxy."""
    config = cfgmod.load(
        cfgmod.ServeConfig,
        config_file,
        "MININOVA_",
        {
            "data_dir": data_dir,
            "listen": listen,
            "database_url": database_url,
            "public_url": public_url,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "insecure_http": insecure_http,
            "log_level": log_level,
        },
    )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if config.tls_enabled and not config.base_url.startswith("https://"):
        raise click.UsageError(
            f"serve speaks HTTPS when listening on {config.listen_host}, but the public URL is"
            f" {config.base_url}: use an https:// --public-url (or --insecure-http)"
        )
    _setup_logging(config.log_level)
    os.umask(0o077)
    asyncio.run(_serve(config, local_agent, config_file))


def join_command(controller_url: str, token: str, ca_fingerprint: str | None) -> str:
    """The command that joins a compute host, as serve and `token create` print it."""
    pin = f" --ca-cert-hash {ca_fingerprint}" if ca_fingerprint else ""
    return (
        f"mininova agent --controller {controller_url} --token {token}{pin}"
        " --driver libvirt --host $(hostname)"
    )


async def _serve(
    config: cfgmod.ServeConfig, local_agent: str | None, config_file: Path | None
) -> None:
    from mininova.controller import Controller

    controller = Controller(config, migrate_in_subprocess=True)
    await controller.start()
    click.echo(f"mininova is running at {config.base_url}")
    click.echo(f"  dashboard:   {config.base_url}/ui/  (log in as admin)")
    click.echo(f"  identity (OS_AUTH_URL): {controller.auth_url}")
    click.echo(f"  credentials: user admin, password in {config.data_dir / 'admin-credentials'}")
    click.echo(f"  clouds.yaml: {config.data_dir / 'clouds.yaml'}  (cloud: mininova)")
    click.echo(f"  openrc:      {config.data_dir / 'openrc'}")
    if controller.tls is not None:
        click.echo(f"  CA certificate: {controller.tls.ca_file}  ({controller.tls.ca_fingerprint})")
    ttl = config.join_token_ttl
    click.echo(
        "  join a compute host with"
        + (f" (token valid {ttl // 3600} h; `mininova token create` makes more):" if ttl else ":")
    )
    fingerprint = controller.tls.ca_fingerprint if controller.tls else None
    click.echo(f"    {join_command(config.base_url, controller.join_token, fingerprint)}")
    sys.stdout.flush()
    agent_task = None
    if local_agent:
        from mininova.agent import run_agent

        agent_config = cfgmod.load(
            cfgmod.AgentConfig,
            None,
            "MININOVA_AGENT_",
            {
                "controller": config.base_url,
                "token": controller.join_token,
                "ca_cert_hash": fingerprint or "",
                "insecure_http": config.insecure_http,
                "driver": local_agent,
                "host": socket.gethostname(),
                "data_dir": config.data_dir / "agent",
            },
        )
        agent_task = asyncio.create_task(run_agent(agent_config), name="local-agent")
        agent_task.add_done_callback(_report_local_agent)
        # The README tour starts right after the banner: have the host up before saying so.
        hub = controller.hub
        assert hub is not None
        for _ in range(1200):
            if hub.is_connected(agent_config.host) or agent_task.done():
                break
            await asyncio.sleep(0.1)
        state = "connected" if hub.is_connected(agent_config.host) else "NOT connected (see log)"
        click.echo(f"  local agent: {agent_config.host} ({local_agent} driver), {state}")
    try:
        await _wait_for_signal()
    finally:
        if agent_task is not None:
            agent_task.cancel()
            await asyncio.gather(agent_task, return_exceptions=True)
        await controller.stop()
        click.echo("mininova stopped")


def _report_local_agent(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("mininova.cli").error("local agent stopped: %s", task.exception())


@main.command()
@click.option("--controller", default=None, help="Controller URL, e.g. https://10.0.0.1:8780")
@click.option("--token", default=None, help="Join token printed by `mininova serve`.")
@click.option(
    "--ca-cert-hash", default=None, help="sha256:<hex> of the controller's CA (printed by serve)."
)
@click.option("--driver", type=click.Choice(["fake", "libvirt"]), default=None)
@click.option("--host", default=None, help="Name of this compute host (default: hostname).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--instances-dir", default=None, help="Guest disks (must be reachable by QEMU).")
@click.option("--insecure-http", is_flag=True, default=None, help="Allow plain ws:// off loopback.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--log-level", default=None)
def agent(
    controller: str | None,
    token: str | None,
    ca_cert_hash: str | None,
    driver: str | None,
    host: str | None,
    data_dir: Path | None,
    instances_dir: str | None,
    insecure_http: bool | None,
    config_file: Path | None,
    log_level: str | None,
) -> None:
    """Run a compute agent: dials out to the controller and manages local guests."""
    config = cfgmod.load(
        cfgmod.AgentConfig,
        config_file,
        "MININOVA_AGENT_",
        {
            "controller": controller,
            "token": token,
            "ca_cert_hash": ca_cert_hash,
            "driver": driver,
            "host": host,
            "data_dir": data_dir,
            "instances_dir": instances_dir,
            "insecure_http": insecure_http,
            "log_level": log_level,
        },
    )
    if not config.host:
        config.host = socket.gethostname()
    _setup_logging(config.log_level)
    os.umask(0o077)
    from mininova.agent.identity import AgentRefused
    from mininova.virt.driver import DriverError

    try:
        asyncio.run(_agent(config))
    except (AgentRefused, DriverError) as exc:
        click.echo(f"mininova agent: {exc}", err=True)
        sys.exit(1)


async def _agent(config: cfgmod.AgentConfig) -> None:
    from mininova.agent import run_agent

    task = asyncio.create_task(run_agent(config), name="agent")
    waiter = asyncio.create_task(_wait_for_signal())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, waiter):
        t.cancel()
    await asyncio.gather(task, waiter, return_exceptions=True)
    if task in done and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


@main.group()
def token() -> None:
    """Join tokens for new compute hosts (run on the controller, next to its data dir)."""


def _serve_config(data_dir: Path | None, config_file: Path | None) -> cfgmod.ServeConfig:
    return cfgmod.load(cfgmod.ServeConfig, config_file, "MININOVA_", {"data_dir": data_dir})


async def _with_store(config: cfgmod.ServeConfig, work: Any) -> Any:
    from mininova.store import Store

    if not config.database_url and not (config.data_dir / "mininova.sqlite").exists():
        raise click.ClickException(f"no cloud in {config.data_dir} (run `mininova serve` first)")
    store = Store(config.store_url)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


_data_dir_option = click.option("--data-dir", type=click.Path(path_type=Path), default=None)
_config_option = click.option(
    "--config", "config_file", type=click.Path(path_type=Path, exists=True), default=None
)


@token.command("create")
@click.option("--ttl", type=int, default=86400, show_default=True, help="Lifetime (s); 0: none.")
@click.option("--uses", type=int, default=None, help="How many hosts may join with it.")
@click.option("--description", default="", help="A note shown by `token list`.")
@_data_dir_option
@_config_option
def token_create(
    ttl: int, uses: int | None, description: str, data_dir: Path | None, config_file: Path | None
) -> None:
    """Create a join token and print the join command."""
    from mininova.tls import fingerprint_of_pem
    from mininova.trust import enrolment

    os.umask(0o077)
    config = _serve_config(data_dir, config_file)

    async def create(store: Any) -> tuple[str, Any, str]:
        secret, info = await enrolment.create_join_token(store, ttl or None, uses, description)
        return secret, info, await store.get_setting("public_url") or config.base_url

    secret, info, url = asyncio.run(_with_store(config, create))
    ca = config.data_dir / "tls" / "ca.pem"
    https = url.startswith("https://")
    fingerprint = fingerprint_of_pem(ca.read_bytes()) if https and ca.exists() else None
    click.echo(secret)
    click.echo(f"# id {info.id}, expires {info.expires_at or 'never'}, uses {uses or 'unlimited'}")
    click.echo(f"# join with: {join_command(url, secret, fingerprint)}")


@token.command("list")
@_data_dir_option
@_config_option
def token_list(data_dir: Path | None, config_file: Path | None) -> None:
    """List join tokens (ids only: the secrets are not stored)."""
    from mininova.trust import enrolment

    config = _serve_config(data_dir, config_file)
    tokens = asyncio.run(_with_store(config, enrolment.list_join_tokens))
    click.echo(f"{'ID':10} {'STATE':9} {'USED':>4} {'LEFT':>9} {'EXPIRES':27} DESCRIPTION")
    for t in tokens:
        left = "unlimited" if t.uses_left is None else str(t.uses_left)
        click.echo(
            f"{t.id:10} {t.state:9} {t.used:>4} {left:>9} {t.expires_at or 'never':27}"
            f" {t.description}"
        )


@token.command("revoke")
@click.argument("token_id")
@_data_dir_option
@_config_option
def token_revoke(token_id: str, data_dir: Path | None, config_file: Path | None) -> None:
    """Revoke a join token by id (hosts that already joined keep their credentials)."""
    from mininova.trust import enrolment

    config = _serve_config(data_dir, config_file)
    if not asyncio.run(_with_store(config, lambda st: enrolment.revoke_join_token(st, token_id))):
        raise click.ClickException(f"no valid join token with id {token_id}")
    click.echo(f"join token {token_id} revoked")


@main.command()
@_data_dir_option
@click.option(
    "--database-url", default=None, help="The controller's database (default: SQLite in D)."
)
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON document.")
@click.option("--no-checksums", is_flag=True, help="Compare image sizes only, not their MD5.")
def doctor(
    data_dir: Path | None,
    database_url: str | None,
    config_file: Path | None,
    as_json: bool,
    no_checksums: bool,
) -> None:
    """Check the cloud's state for inconsistencies (read-only; safe while serve runs).

    Prints one line per problem and a summary; exits 1 when anything is wrong."""
    from mininova import doctor as doctor_mod
    from mininova.store import Store

    config = cfgmod.load(
        cfgmod.ServeConfig,
        config_file,
        "MININOVA_",
        {"data_dir": data_dir, "database_url": database_url},
    )
    if not config.database_url and not (config.data_dir / "mininova.sqlite").exists():
        raise click.ClickException(f"no cloud in {config.data_dir} (run `mininova serve` first)")

    async def run() -> list[Any]:
        store = Store(config.store_url)
        await store.open(migrate=False)
        try:
            return await doctor_mod.check(store, config, checksums=not no_checksums)
        finally:
            await store.close()

    problems = asyncio.run(run())
    if as_json:
        out = {"problems": [p.as_dict() for p in problems], "ok": not problems}
        click.echo(json.dumps(out, indent=2))
    else:
        for problem in problems:
            click.echo(problem.line())
        click.echo(doctor_mod.summary(problems))
    sys.exit(1 if problems else 0)


# ----------------------------------------------------------------- TCP to a guest (clients)
#
# `tunnel`, `ssh` and `port-forward` read clouds.yaml / OS_* as the openstack CLI does
# (openstacksdk's config loader, keystoneauth session), find the server through the compute
# API and open `GET /tunnel/tcp/<server id>?port=P` (X-Auth-Token) on the same host as the
# compute endpoint: binary websocket frames <-> the guest's fixed IP:P, via its agent.

TUNNEL_CHUNK = 64 * 1024
TUNNEL_MAX_MESSAGE = 16 * 1024 * 1024
TUNNEL_OPEN_TIMEOUT = 30.0  # the controller's setup (agent order + dial-in) takes up to 15 s
TUNNEL_KEEPALIVE = 20.0


class TunnelError(click.ClickException):
    """A refusal or failure, printed as `mininova <command>: <message>` with exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        ctx = click.get_current_context(silent=True)
        self.command = f"mininova {ctx.info_name}" if ctx is not None else "mininova"

    def show(self, file: Any = None) -> None:
        click.echo(f"{self.command}: {self.message}", err=True)


class Cloud:
    """The cloud as `openstack` sees it: clouds.yaml (`--os-cloud`/OS_CLOUD) or OS_* vars."""

    def __init__(self, cloud: str | None, cacert: str | None, insecure: bool) -> None:
        import openstack.config
        from keystoneauth1 import exceptions as ksa
        from openstack import exceptions

        # keystoneauth warns on stderr (e.g. version discovery); our errors say it once
        logging.getLogger("keystoneauth").setLevel(logging.ERROR)
        self.args: list[str] = []  # to give a child `mininova tunnel` the same cloud
        kwargs: dict[str, Any] = {}
        if cloud:
            self.args += ["--os-cloud", cloud]
        if cacert:
            kwargs["cacert"] = cacert
            self.args += ["--os-cacert", cacert]
        if insecure:
            kwargs["verify"] = False
            self.args.append("--insecure")
        try:
            self.region = openstack.config.OpenStackConfig().get_one(cloud=cloud, **kwargs)
            self.session = self.region.get_session()
        except (exceptions.OpenStackCloudException, ksa.ClientException) as exc:
            raise TunnelError(
                f"cannot load the cloud configuration: {exc} (set --os-cloud/OS_CLOUD for"
                " clouds.yaml, or the OS_* variables)"
            ) from exc
        self._compute: str | None = None

    @property
    def name(self) -> str:
        """A file-name-safe name for this cloud (clouds.yaml name, else from the auth URL)."""
        import hashlib
        import re

        name = self.region.name or ""
        if name and name not in ("envvars", "defaults"):
            return re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        auth_url = str(self.region.config.get("auth", {}).get("auth_url", ""))
        return "env-" + hashlib.sha256(auth_url.encode()).hexdigest()[:12]

    def _keystone(self, what: str, call: Any) -> Any:
        from keystoneauth1 import exceptions as ksa

        try:
            return call()
        except ksa.ClientException as exc:
            raise TunnelError(f"{what}: {exc}") from exc

    @property
    def compute(self) -> str:
        if self._compute is None:
            self.token()  # a wrong password is an authentication failure, not a catalog one
            url = self._keystone(
                "cannot find the compute endpoint",
                lambda: self.region.get_session_endpoint("compute"),
            )
            if not url:
                raise TunnelError("the service catalog has no compute endpoint")
            self._compute = str(url).rstrip("/")
        return self._compute

    def token(self) -> str:
        return str(self._keystone("authentication failed", self.session.get_token))

    def _get(self, path: str) -> Any:
        resp = self._keystone(
            "the compute API did not answer",
            lambda: self.session.get(self.compute + path, raise_exc=False),
        )
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise TunnelError(f"the compute API answered {resp.status_code}: {_api_message(resp)}")
        return resp.json()

    def find_server(self, name_or_id: str) -> dict[str, Any]:
        """The caller's server by id, else by exact name; TunnelError when none or several."""
        import re
        from urllib.parse import quote

        body = self._get("/servers/" + quote(name_or_id, safe=""))
        if body is not None:
            return dict(body["server"])
        found = self._get("/servers/detail?name=" + quote("^" + re.escape(name_or_id) + "$"))
        servers = [s for s in (found or {}).get("servers", []) if s.get("name") == name_or_id]
        if not servers:
            raise TunnelError(f"no server named or with id {name_or_id!r}")
        if len(servers) > 1:
            ids = ", ".join(s["id"] for s in servers)
            raise TunnelError(f"several servers are named {name_or_id!r} ({ids}): use an id")
        return dict(servers[0])

    def active_server(self, name_or_id: str) -> dict[str, Any]:
        server = self.find_server(name_or_id)
        if server.get("status") != "ACTIVE":
            raise TunnelError(
                f"server {server.get('name')} ({server['id']}) is {server.get('status')},"
                " not ACTIVE"
            )
        return server

    def tunnel_url(self, server_id: str, port: int) -> str:
        """`/tunnel/tcp/...` on the compute endpoint's scheme://host:port (ws or wss)."""
        from urllib.parse import quote, urlsplit

        parts = urlsplit(self.compute)
        prefix = parts.path
        at = prefix.find("/compute")
        prefix = prefix[:at] if at >= 0 else ""
        scheme = "wss" if parts.scheme == "https" else "ws"
        return (
            f"{scheme}://{parts.netloc}{prefix}/tunnel/tcp/{quote(server_id, safe='')}?port={port}"
        )

    def ssl_context(self) -> Any:
        """The TLS context for wss:// with the session's `verify` (cacert, or off) and cert."""
        import ssl

        verify, cert = self.region.get_requests_verify_args()
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        else:
            context = ssl.create_default_context()
        if cert:
            if isinstance(cert, (tuple, list)):
                context.load_cert_chain(cert[0], cert[1])
            else:
                context.load_cert_chain(cert)
        return context


def _api_message(resp: Any) -> str:
    """The `message` of an OpenStack error body (Nova's, Keystone's, the tunnel's)."""
    try:
        body = resp.json() if hasattr(resp, "json") else json.loads(resp)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
    text = resp.text if hasattr(resp, "text") else str(resp)
    return text.strip()[:300] or "no message"


async def open_tcp_tunnel(cloud: Cloud, server_id: str, port: int) -> Any:
    """A connected `websockets` client for the tunnel; TunnelError with the server's reason."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    try:
        token = await asyncio.to_thread(cloud.token)
    except TunnelError as exc:  # raised in the worker thread: name the command here
        raise TunnelError(exc.message) from exc
    url = cloud.tunnel_url(server_id, port)
    extra = {"ssl": cloud.ssl_context()} if url.startswith("wss:") else {}
    try:
        return await connect(
            url,
            additional_headers={"X-Auth-Token": token},
            compression=None,
            max_size=TUNNEL_MAX_MESSAGE,
            open_timeout=TUNNEL_OPEN_TIMEOUT,
            ping_interval=TUNNEL_KEEPALIVE,
            ping_timeout=TUNNEL_KEEPALIVE,
            **extra,
        )
    except InvalidStatus as exc:
        response = exc.response
        raise TunnelError(
            f"tunnel to port {port} refused ({response.status_code}):"
            f" {_api_message((response.body or b'').decode('utf-8', 'replace'))}"
        ) from exc
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        raise TunnelError(f"cannot open the tunnel at {url.split('?')[0]}: {exc}") from exc


class _StdioEnd:
    """stdin -> relay -> stdout as a relay `End`: pipe transports (pipes, sockets, ttys), or
    plain blocking reads/writes for regular files (which never block for long)."""

    name = "stdio"

    def __init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls) -> _StdioEnd:
        import stat

        end = cls()
        loop = asyncio.get_running_loop()
        if not stat.S_ISREG(os.fstat(0).st_mode):
            reader = asyncio.StreamReader(limit=TUNNEL_CHUNK)
            stdin = os.fdopen(0, "rb", buffering=0, closefd=False)
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
            end._reader = reader
        if not stat.S_ISREG(os.fstat(1).st_mode):
            stdout = os.fdopen(1, "wb", buffering=0, closefd=False)
            transport, protocol = await loop.connect_write_pipe(
                asyncio.streams.FlowControlMixin, stdout
            )
            end._writer = asyncio.StreamWriter(transport, protocol, None, loop)
        return end

    async def read(self) -> bytes:
        try:
            if self._reader is not None:
                return await self._reader.read(TUNNEL_CHUNK)
            return await asyncio.to_thread(os.read, 0, TUNNEL_CHUNK)
        except OSError:
            return b""

    async def write(self, data: bytes) -> None:
        if self._writer is not None:
            self._writer.write(data)
            await self._writer.drain()
            return

        def write_all() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(1, view) :]

        await asyncio.to_thread(write_all)

    async def close(self, reason: str = "") -> None:
        if self._writer is not None:
            self._writer.close()

    @staticmethod
    def restore() -> None:
        """Blocking mode back on stdin/stdout (a tty shares it with stderr)."""
        import contextlib

        for fd in (0, 1):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)


async def _stdio_tunnel(cloud: Cloud, server_id: str, port: int) -> None:
    from mininova.relay import WebsocketsEnd, relay

    conn = await open_tcp_tunnel(cloud, server_id, port)
    try:
        stdio = await _StdioEnd.open()
        await relay(stdio, WebsocketsEnd(conn, "tunnel"))
    finally:
        _StdioEnd.restore()
        await conn.close()


def _cloud_options(fn: Any) -> Any:
    for option in reversed(
        (
            click.option(
                "--os-cloud",
                envvar="OS_CLOUD",
                default=None,
                help="Cloud name in clouds.yaml (env OS_CLOUD); default: the OS_* variables.",
            ),
            click.option("--os-cacert", default=None, help="CA bundle (default: the cloud's)."),
            click.option("--insecure", is_flag=True, help="Do not verify the server certificate."),
        )
    ):
        fn = option(fn)
    return fn


@main.command()
@_cloud_options
@click.argument("server")
@click.argument("port", type=click.IntRange(1, 65535))
def tunnel(
    server: str, port: int, os_cloud: str | None, os_cacert: str | None, insecure: bool
) -> None:
    """Bridge stdin/stdout to TCP PORT of SERVER (name or id), e.g. as ssh's ProxyCommand.

    The bytes go through the controller and the server's agent to the server's fixed IP; an
    end of input on either side closes the connection."""
    cloud = Cloud(os_cloud, os_cacert, insecure)
    target = cloud.active_server(server)
    asyncio.run(_stdio_tunnel(cloud, target["id"], port))


def known_hosts_file(cloud: Cloud) -> Path:
    """The per-cloud known_hosts file `mininova ssh` uses (not ~/.ssh/known_hosts)."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mininova" / "known_hosts" / cloud.name


def ssh_command(
    cloud: Cloud, server: dict[str, Any], user: str, ssh_args: tuple[str, ...], known: Path
) -> list[str]:
    """The `ssh` argv: ProxyCommand = this Python's `mininova tunnel <id> %p`; the host key is
    remembered under the alias `mininova-<server id>` in the per-cloud known_hosts file."""
    import re
    import shlex
    import shutil

    ssh = shutil.which("ssh")
    if ssh is None:
        raise TunnelError("no `ssh` client on PATH (install openssh-client)")
    proxy = [sys.executable, "-m", "mininova.cli", "tunnel", *cloud.args, server["id"]]
    # ssh expands %-tokens in ProxyCommand: escape ours, keep %p (the port, `-p` or 22)
    proxy_command = " ".join(shlex.quote(arg).replace("%", "%%") for arg in proxy) + " %p"
    name = str(server.get("name") or "")
    destination = name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) else server["id"]
    return [
        ssh,
        "-o",
        f"ProxyCommand={proxy_command}",
        "-o",
        f"HostKeyAlias=mininova-{server['id']}",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-l",
        user,
        destination,
        *ssh_args,
    ]


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@_cloud_options
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path),
    default=None,
    help="known_hosts file (default: ~/.config/mininova/known_hosts/<cloud>).",
)
@click.argument("target")
@click.argument("ssh_args", nargs=-1, type=click.UNPROCESSED)
def ssh(
    target: str,
    ssh_args: tuple[str, ...],
    known_hosts: Path | None,
    os_cloud: str | None,
    os_cacert: str | None,
    insecure: bool,
) -> None:
    """ssh to [USER@]SERVER (user root by default) through the server's agent.

    Runs the system `ssh` with a ProxyCommand of `mininova tunnel`; SSH_ARGS go to ssh after
    the destination (options such as `-i KEY` or `-p PORT`, then a remote command). New host
    keys are accepted and remembered per server in a per-cloud known_hosts file."""
    user, _, name = target.rpartition("@")
    cloud = Cloud(os_cloud, os_cacert, insecure)
    server = cloud.active_server(name)
    known = known_hosts or known_hosts_file(cloud)
    known.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = ssh_command(cloud, server, user or "root", ssh_args, known)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


async def _port_forward(
    cloud: Cloud, server: dict[str, Any], local_port: int, guest_port: int
) -> None:
    from mininova.relay import StreamEnd, WebsocketsEnd, relay

    connections: set[asyncio.Task[Any]] = set()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            conn = await open_tcp_tunnel(cloud, server["id"], guest_port)
        except TunnelError as exc:
            click.echo(
                f"mininova port-forward: connection from {peer[0]}:{peer[1]}: {exc.message}",
                err=True,
            )
            writer.close()
            connections.discard(task)
            return
        try:
            await relay(StreamEnd(reader, writer, "local"), WebsocketsEnd(conn, "tunnel"))
        finally:
            connections.discard(task)

    try:
        listener = await asyncio.start_server(forward, "127.0.0.1", local_port)
    except OSError as exc:
        raise TunnelError(
            f"cannot listen on 127.0.0.1:{local_port}: {exc.strerror or exc}"
        ) from exc
    bound = listener.sockets[0].getsockname()[1]
    click.echo(
        f"Forwarding 127.0.0.1:{bound} -> server {server.get('name')} ({server['id']})"
        f" port {guest_port}; Ctrl-C to stop"
    )
    sys.stdout.flush()
    try:
        await _wait_for_signal()
    finally:
        listener.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


@main.command("port-forward")
@_cloud_options
@click.argument("server")
@click.argument("ports", metavar="LOCAL_PORT:GUEST_PORT")
def port_forward(
    server: str, ports: str, os_cloud: str | None, os_cacert: str | None, insecure: bool
) -> None:
    """Listen on 127.0.0.1:LOCAL_PORT and forward each connection to GUEST_PORT of SERVER.

    One tunnel per accepted connection; LOCAL_PORT 0 picks a free port (printed)."""
    local, sep, guest = ports.partition(":")
    if not (sep and local.isdigit() and guest.isdigit()):
        raise click.BadParameter(
            "expected LOCAL_PORT:GUEST_PORT, e.g. 8080:80", param_hint="LOCAL_PORT:GUEST_PORT"
        )
    if not 0 <= int(local) <= 65535 or not 1 <= int(guest) <= 65535:
        raise click.BadParameter(
            "ports are 1..65535 (LOCAL_PORT may be 0)", param_hint="LOCAL_PORT:GUEST_PORT"
        )
    cloud = Cloud(os_cloud, os_cacert, insecure)
    target = cloud.active_server(server)
    asyncio.run(_port_forward(cloud, target, int(local), int(guest)))


if __name__ == "__main__":
    main()
