"""The `mininova` command: `serve` (the controller) and `agent` (a compute host)."""

from __future__ import annotations

import asyncio
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


if __name__ == "__main__":
    main()
