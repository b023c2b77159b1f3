"""The `mininova` command: `serve` (the controller) and `agent` (a compute host)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

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
@click.option("--log-level", default=None)
def serve(
    data_dir: Path | None,
    listen: str | None,
    public_url: str | None,
    config_file: Path | None,
    local_agent: str | None,
    log_level: str | None,
) -> None:
    """Run the controller: api, conductor, scheduler, consoleauth and the console proxy."""
    config = cfgmod.load(
        cfgmod.ServeConfig,
        config_file,
        "MININOVA_",
        {"data_dir": data_dir, "listen": listen, "public_url": public_url, "log_level": log_level},
    )
    _setup_logging(config.log_level)
    asyncio.run(_serve(config, local_agent, config_file))


async def _serve(
    config: cfgmod.ServeConfig, local_agent: str | None, config_file: Path | None
) -> None:
    from mininova.controller import Controller

    controller = Controller(config)
    await controller.start()
    creds = controller.credentials
    assert creds is not None
    click.echo(f"mininova is running at {config.base_url}")
    click.echo(f"  identity (OS_AUTH_URL): {controller.auth_url}")
    click.echo(f"  credentials: user admin, password in {config.data_dir / 'admin-credentials'}")
    click.echo(f"  clouds.yaml: {config.data_dir / 'clouds.yaml'}  (cloud: mininova)")
    click.echo(f"  openrc:      {config.data_dir / 'openrc'}")
    click.echo("  join a compute host with:")
    click.echo(
        f"    mininova agent --controller {config.base_url} --token {creds.agent_token}"
        " --driver libvirt --host $(hostname)"
    )
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
                "token": creds.agent_token,
                "driver": local_agent,
                "host": socket.gethostname(),
                "data_dir": config.data_dir / "agent",
            },
        )
        agent_task = asyncio.create_task(run_agent(agent_config), name="local-agent")
        click.echo(f"  local agent: {agent_config.host} ({local_agent} driver)")
    try:
        await _wait_for_signal()
    finally:
        if agent_task is not None:
            agent_task.cancel()
            await asyncio.gather(agent_task, return_exceptions=True)
        await controller.stop()
        click.echo("mininova stopped")


@main.command()
@click.option("--controller", default=None, help="Controller URL, e.g. http://10.0.0.1:8780")
@click.option("--token", default=None, help="Agent join token printed by `mininova serve`.")
@click.option("--driver", type=click.Choice(["fake", "libvirt"]), default=None)
@click.option("--host", default=None, help="Name of this compute host (default: hostname).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--config", "config_file", type=click.Path(path_type=Path, exists=True), default=None)
@click.option("--log-level", default=None)
def agent(
    controller: str | None,
    token: str | None,
    driver: str | None,
    host: str | None,
    data_dir: Path | None,
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
            "driver": driver,
            "host": host,
            "data_dir": data_dir,
            "log_level": log_level,
        },
    )
    if not config.host:
        config.host = socket.gethostname()
    if not config.token:
        raise click.UsageError("--token is required (printed by `mininova serve`)")
    _setup_logging(config.log_level)
    asyncio.run(_agent(config))


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


if __name__ == "__main__":
    main()
