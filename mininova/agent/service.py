"""The compute agent: dial the controller, say hello, heartbeat, execute orders, reconnect.

After every (re)connect the `hello` carries the guests the driver sees, so the controller
reconciles. Orders running when the link drops are left to finish; their replies are lost and
the next hello settles the state. Stopping the agent (cancelling `run`) never touches guests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from websockets.exceptions import InvalidStatus

from mininova.agent.handlers import OrderHandlers
from mininova.agent.identity import AgentRefused, HostIdentity
from mininova.agent.link import Backoff, agent_ws_url, describe_failure, dial, read_loop
from mininova.agent.specs import guest_to_dict, resources_to_dict
from mininova.config import AgentConfig
from mininova.protocol.core import NETWORK_STATE_VERSIONS, PROTOCOL_VERSION, ProtocolError
from mininova.protocol.peer import Peer
from mininova.virt.driver import ComputeDriver

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 30.0
EVENT_TIMEOUT = 30.0


async def _call(peer: Peer, method: str, params: dict[str, Any], timeout: float) -> Any:
    """peer.call, without losing a cancellation of the calling task.

    On Python 3.11 `asyncio.wait_for` (used inside Peer.call) returns the result and swallows
    the cancellation when the reply and the cancel arrive together; re-raise it here so a
    stopping agent really stops.
    """
    task = asyncio.current_task()
    try:
        return await peer.call(method, params, timeout=timeout)
    finally:
        if task is not None and task.cancelling():
            raise asyncio.CancelledError  # noqa: B012 - restores a swallowed cancellation


class Agent:
    def __init__(self, config: AgentConfig, driver: ComputeDriver) -> None:
        self.config = config
        self.driver = driver
        self.host = config.host or socket.gethostname()
        self.url = agent_ws_url(config.controller)
        driver.console_log_max_bytes = config.console_log_max_bytes
        self.handlers = OrderHandlers(driver)
        self.identity = HostIdentity(config, self.host)
        self.access = driver.controller  # credential + TLS trust, shared with the driver
        self.heartbeat_interval = config.heartbeat_interval
        self.peer: Peer | None = None
        self.connected = asyncio.Event()  # set while a link is up and hello was accepted
        self.sessions = 0  # hellos accepted so far
        self._events: asyncio.Queue[tuple[str, int]] | None = None
        driver.set_event_callback(self._on_driver_event)

    # -- driver events ---------------------------------------------------------------------

    async def _on_driver_event(self, uuid: str, power_state: int) -> None:
        queue = self._events
        if queue is None:
            log.debug("no controller link; dropping event %s -> %s", uuid, power_state)
            return
        queue.put_nowait((uuid, power_state))

    async def _send_events(self, peer: Peer, queue: asyncio.Queue[tuple[str, int]]) -> None:
        while True:
            uuid, power_state = await queue.get()
            try:
                await _call(
                    peer,
                    "instance_event",
                    {"uuid": uuid, "power_state": power_state},
                    EVENT_TIMEOUT,
                )
            except ProtocolError as exc:
                if peer.closed:
                    return
                log.warning("instance_event %s not accepted: %s", uuid, exc)
            except Exception as exc:
                log.info("instance_event %s not sent: %s", uuid, exc)
                return

    # -- reports ---------------------------------------------------------------------------

    async def _report(self) -> dict[str, Any]:
        resources = await self.driver.host_resources()
        guests = await self.driver.list_guests()
        return {
            "resources": resources_to_dict(resources),
            "guests": [guest_to_dict(g) for g in guests],
        }

    async def _hello(self, peer: Peer) -> None:
        params = {
            "host": self.host,
            "driver": self.driver.name,
            "protocol": PROTOCOL_VERSION,
            "network_state_versions": list(NETWORK_STATE_VERSIONS),
            "destroy_orphans": self.config.destroy_orphans,
            **await self._report(),
        }
        try:
            reply = await _call(peer, "hello", params, HELLO_TIMEOUT)
        except ProtocolError as exc:
            if exc.code in ("enrolment_refused", "host_mismatch"):
                raise AgentRefused(f"controller refused this host: {exc.message}") from exc
            raise
        credential = reply.get("credential") if isinstance(reply, dict) else None
        if isinstance(credential, str) and credential:
            self.identity.save_credential(credential)
            self.access.credential = credential
        interval = reply.get("heartbeat_interval") if isinstance(reply, dict) else None
        if isinstance(interval, int | float) and not isinstance(interval, bool) and interval > 0:
            self.heartbeat_interval = max(0.05, float(interval))
        else:
            self.heartbeat_interval = self.config.heartbeat_interval
        log.info("connected to %s as %s (%d guests)", self.url, self.host, len(params["guests"]))

    async def _heartbeats(self, peer: Peer) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                # A hypervisor busy starting a domain must not silence the heartbeat.
                report = await asyncio.wait_for(self._report(), self.heartbeat_interval)
            except TimeoutError:
                log.info("host state is slow to read; heartbeat without a report")
                report = {}
            except Exception as exc:
                log.warning("cannot read host state for heartbeat: %s", exc)
                report = {}
            try:
                # A notification: the controller needs no answer (a dead controller shows as
                # missing websocket pongs), and 1,000 idle hosts cost it 200 fewer frames a second.
                await peer.notify("heartbeat", report)
            except Exception as exc:
                log.info("heartbeat not sent: %s", exc)
                return
            if peer.closed:
                return

    # -- link ------------------------------------------------------------------------------

    async def run_once(self) -> bool:
        """One connection: dial, hello, serve until the link drops. True if hello succeeded."""
        ping = max(5.0, 2 * self.config.heartbeat_interval)
        secret = self.access.credential or self.config.token
        try:
            ws = await dial(self.url, secret, ping, self.access)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                what = "this host's credential" if self.access.credential else "the join token"
                detail = (
                    exc.response.body.decode(errors="replace")[:200] if exc.response.body else ""
                )
                hint = (
                    f" (revoked?): remove {self.identity.credential_file} and join again with"
                    " a new token"
                    if self.access.credential
                    else " (unknown, expired, revoked or used up): create a new one with"
                    " `mininova token create`"
                )
                raise AgentRefused(f"controller refused {what}{hint}. {detail}".strip()) from exc
            raise
        async with ws:
            peer = Peer(ws.send, self.handlers.table(), name="controller")
            reader = asyncio.create_task(read_loop(ws, peer))
            queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
            self._events = queue  # events from now on reach the controller after hello
            background: list[asyncio.Task[None]] = []
            try:
                await self._hello(peer)
                self.peer = peer
                self.sessions += 1
                self.connected.set()
                background = [
                    asyncio.create_task(self._heartbeats(peer)),
                    asyncio.create_task(self._send_events(peer, queue)),
                ]
                await reader
                return True
            finally:
                if self._events is queue:
                    self._events = None
                if self.peer is peer:
                    self.peer = None
                    self.connected.clear()
                peer.close("agent link closed")
                for task in (reader, *background):
                    task.cancel()
                await asyncio.gather(reader, *background, return_exceptions=True)

    async def run(self) -> None:
        """Stay connected forever, reconnecting with exponential backoff; cancel to stop."""
        try:
            await self._run()
        except AgentRefused as exc:
            log.error("agent %s stops: %s", self.host, exc)
            raise

    async def _run(self) -> None:
        backoff = Backoff(self.config.reconnect_max_backoff)
        self.identity.check_plain_http()
        self.access.credential = self.identity.load_credential()
        if not self.access.credential and not self.config.token:
            raise AgentRefused(
                f"no join token and no stored credential in {self.identity.credential_file}:"
                " pass the --token that `mininova serve` printed"
            )
        trusted = False
        while True:
            try:
                if not trusted:
                    self.access.ssl = await self.identity.ssl_context()
                    trusted = True
                if await self.run_once():
                    backoff.reset()
                reason = "link closed"
            except (asyncio.CancelledError, AgentRefused):
                raise
            except Exception as exc:
                reason = describe_failure(exc)
            delay = backoff.next()
            log.warning("%s; reconnecting to %s in %.1fs", reason, self.url, delay)
            await asyncio.sleep(delay)


async def run_agent(config: AgentConfig) -> None:
    """Build the driver, connect to the controller and serve until cancelled."""
    from mininova.virt.factory import create_driver

    driver = create_driver(config)
    await driver.init_host()
    try:
        agent = Agent(config, driver)
        log.info(
            "mininova agent %s starting (%s driver, controller %s)",
            agent.host,
            driver.name,
            agent.url,
        )
        await agent.run()
    finally:
        driver.set_event_callback(None)
        with contextlib.suppress(Exception):
            await driver.cleanup_host()
        log.info("mininova agent stopped")
