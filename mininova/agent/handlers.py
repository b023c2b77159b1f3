"""The orders a controller may send an agent, executed against the compute driver.

Every handler takes the request's params dict and returns a JSON-ready result. Driver errors
become coded ProtocolErrors (`not_found`, `failed`); bad params raise ValueError, which the
Peer answers as `invalid_params`. Orders touching one guest run one at a time (a lock per
instance uuid); orders for different guests run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from mininova.agent import tunnel
from mininova.agent.specs import guest_to_dict, resources_to_dict, spec_from_dict
from mininova.protocol.core import (
    ADDRESS_REFUSED,
    FAILED,
    NETWORK_STATE_VERSIONS,
    NOT_FOUND,
    UNREACHABLE,
    ProtocolError,
)
from mininova.protocol.network_members import STALE_STATE, MemberState, StaleState
from mininova.virt import console_log
from mininova.virt.driver import (
    RUNNING,
    ComputeDriver,
    ControllerAccess,
    DriverError,
    GuestNotFound,
)

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
POWER_OPS = ("power_off", "power_on", "pause", "unpause", "suspend", "resume")


def _uuid(params: dict[str, Any]) -> str:
    uuid = params.get("uuid")
    if not isinstance(uuid, str) or not uuid or len(uuid) > 64:
        raise ValueError("uuid must be a non-empty string")
    return uuid


def _tunnel_target(params: dict[str, Any]) -> tuple[str, str]:
    url, token = params.get("tunnel_url"), params.get("tunnel_token")
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise ValueError("tunnel_url must be a ws(s):// or http(s):// URL")
    if not isinstance(token, str) or not token:
        raise ValueError("tunnel_token must be a non-empty string")
    return url, token


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _tail(text: str, length: Any) -> str:
    if length is None:
        return text
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError("length must be a non-negative integer or null")
    if length == 0:
        return ""
    # As Nova's compute manager, the last `length` pieces of the log split on "\n", joined
    # by "\n": `output.split("\n")` has exactly `length` items (what tempest counts). The
    # newline ending the log does not start a line of its own, so those are `length` real
    # lines (a final partial line, such as a login prompt, is one of them).
    if text.endswith("\n"):
        text = text[:-1]
    return "\n".join(text.split("\n")[-length:])


class OrderHandlers:
    """Builds the method → handler table for one driver; shared by every link session."""

    def __init__(self, driver: ComputeDriver) -> None:
        self.driver = driver
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.network = MemberState()  # the last version 3 network state taken
        self._network_lock = asyncio.Lock()  # one network state change at a time

    @contextlib.asynccontextmanager
    async def guest_lock(self, uuid: str) -> AsyncIterator[None]:
        """Serialize orders for one guest; the lock is dropped when nobody holds or awaits it."""
        lock, users = self._locks.get(uuid) or (asyncio.Lock(), 0)
        self._locks[uuid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[uuid]
            if users <= 1:
                del self._locks[uuid]
            else:
                self._locks[uuid] = (lock, users - 1)

    def table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "spawn": self.spawn,
            "rebuild": self.rebuild,
            "destroy": self.destroy,
            "reboot": self.reboot,
            "get_info": self.get_info,
            "list_guests": self.list_guests,
            "console_output": self.console_output,
            "open_console_tunnel": self.open_console_tunnel,
            "open_tcp_tunnel": self.open_tcp_tunnel,
            "host_resources": self.host_resources,
            "snapshot": self.snapshot,
            "network_sync": self.network_sync,
            "network_members": self.network_members,
            "resize_prepare": self.resize_prepare,
            "finish_resize": self.finish_resize,
            "confirm_resize": self.confirm_resize,
            "finish_revert_resize": self.finish_revert_resize,
        }
        for op in POWER_OPS:
            table[op] = self._power_op(op)
        return {name: self._logged(name, fn) for name, fn in table.items()}

    @staticmethod
    def _logged(method: str, fn: Handler) -> Handler:
        async def run(params: dict[str, Any]) -> Any:
            uuid = params.get("uuid")
            if uuid is None and isinstance(params.get("instance"), dict):
                uuid = params["instance"].get("uuid")
            started = time.monotonic()
            try:
                result = await fn(params)
            except ProtocolError as exc:
                log.warning("order %s uuid=%s failed (%s): %s", method, uuid, exc.code, exc.message)
                raise
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("order %s uuid=%s rejected: %s", method, uuid, exc)
                raise
            except Exception as exc:
                log.warning("order %s uuid=%s failed: %s", method, uuid, exc)
                raise
            log.info("order %s uuid=%s ok (%.2fs)", method, uuid, time.monotonic() - started)
            return result

        return run

    @contextlib.asynccontextmanager
    async def _moved_disk_path(self) -> AsyncIterator[Path]:
        """A `disk.qcow2` path for a moved disk, in a private directory of its own under the
        driver's staging directory; the directory goes when the block ends."""
        staging = self.driver.staging_dir()
        if staging is not None:
            await asyncio.to_thread(staging.mkdir, mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mininova-move-", dir=staging) as tmp:
            yield Path(tmp) / "disk.qcow2"

    @contextlib.asynccontextmanager
    async def _driver_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except GuestNotFound as exc:
            raise ProtocolError(NOT_FOUND, str(exc) or "guest not found") from exc
        except DriverError as exc:
            raise ProtocolError(FAILED, str(exc) or type(exc).__name__) from exc

    async def _info_or_empty(self, uuid: str) -> dict[str, Any]:
        try:
            return guest_to_dict(await self.driver.get_info(uuid))
        except DriverError:
            return {}

    # -- orders ----------------------------------------------------------------------------

    async def spawn(self, params: dict[str, Any]) -> dict[str, Any]:
        if "instance" not in params:
            raise ValueError("spawn needs an instance")
        spec = spec_from_dict(params["instance"])
        async with self.guest_lock(spec.uuid), self._driver_errors():
            return guest_to_dict(await self.driver.spawn(spec))

    async def rebuild(self, params: dict[str, Any]) -> dict[str, Any]:
        """Rebuild an existing guest from `instance` (a spawn spec): fresh root disk and
        config drive, same domain, MAC and address; started only if `power_on`."""
        if "instance" not in params:
            raise ValueError("rebuild needs an instance")
        spec = spec_from_dict(params["instance"])
        power_on = params.get("power_on", True)
        if not isinstance(power_on, bool):
            raise ValueError("power_on must be a boolean")
        async with self.guest_lock(spec.uuid), self._driver_errors():
            return guest_to_dict(await self.driver.rebuild(spec, power_on))

    async def destroy(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        async with self.guest_lock(uuid), self._driver_errors():
            await self.driver.destroy(uuid)
            if not params.get("keep_resize"):  # a copy kept aside by a resize goes too
                await self.driver.confirm_resize(uuid)
        return {}

    async def reboot(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        hard = params.get("hard", False)
        if not isinstance(hard, bool):
            raise ValueError("hard must be a boolean")
        async with self.guest_lock(uuid), self._driver_errors():
            await self.driver.reboot(uuid, hard)
            return await self._info_or_empty(uuid)

    def _power_op(self, op: str) -> Handler:
        async def run(params: dict[str, Any]) -> dict[str, Any]:
            uuid = _uuid(params)
            async with self.guest_lock(uuid), self._driver_errors():
                await getattr(self.driver, op)(uuid)
                return await self._info_or_empty(uuid)

        run.__name__ = op
        return run

    async def get_info(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        async with self._driver_errors():
            return guest_to_dict(await self.driver.get_info(uuid))

    async def list_guests(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        async with self._driver_errors():
            return [guest_to_dict(g) for g in await self.driver.list_guests()]

    async def console_output(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        length = params.get("length")
        _tail("", length)  # validate before touching the driver
        async with self._driver_errors():
            output = await self.driver.console_output(uuid)
        # whatever the driver returned, never more than the agent's bound
        output = console_log.tail_text(output, self.driver.console_log_max_bytes)
        return {"output": _tail(output, length)}

    async def open_console_tunnel(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        url, token = _tunnel_target(params)
        async with self._driver_errors():
            endpoint = await self.driver.console_endpoint(uuid)
        try:
            await tunnel.open_tunnel(url, token, endpoint, self.driver.controller)
        except ProtocolError:
            raise
        except Exception as exc:
            raise ProtocolError(FAILED, f"console tunnel failed: {exc}") from exc
        return {}

    async def open_tcp_tunnel(self, params: dict[str, Any]) -> dict[str, Any]:
        """Connect to `address:port` of a running guest and relay it to the controller.

        `address` must be one of the guest's own fixed IPs as the driver reports them now:
        the controller names it, but this host never connects anywhere else on its behalf."""
        uuid = _uuid(params)
        url, token = _tunnel_target(params)
        port = params.get("port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError("port must be an integer in 1..65535")
        wanted = _ip(params.get("address"))
        if wanted is None:
            raise ValueError("address must be an IP address")
        async with self._driver_errors():
            info = await self.driver.get_info(uuid)
        if info.power_state != RUNNING:
            raise ProtocolError(FAILED, f"guest {uuid} is not running")
        own = {_ip(a.get("addr")) for a in info.addresses if isinstance(a, dict)}
        if wanted not in own:
            raise ProtocolError(
                ADDRESS_REFUSED, f"{wanted} is not a fixed IP address of instance {uuid}"
            )
        address = str(wanted)
        where = f"[{address}]:{port}" if wanted.version == 6 else f"{address}:{port}"
        try:
            reader, writer = await tunnel.connect_tcp(address, port)
        except TimeoutError as exc:
            raise ProtocolError(UNREACHABLE, f"connecting to {where} timed out") from exc
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            raise ProtocolError(UNREACHABLE, f"cannot connect to {where}: {reason}") from exc
        try:
            await tunnel.start_relay(
                url, token, reader, writer, where, self.driver.controller, kind="tcp"
            )
        except Exception as exc:
            raise ProtocolError(FAILED, f"tcp tunnel failed: {exc}") from exc
        return {}

    async def host_resources(self, params: dict[str, Any]) -> dict[str, Any]:
        async with self._driver_errors():
            return resources_to_dict(await self.driver.host_resources())

    async def network_sync(self, params: dict[str, Any]) -> dict[str, Any]:
        """Enforce the desired network state (`state`, version 1 to 4) of this host's guests.

        Partial failures (one address, one command) come back in the result's `errors`."""
        state = params.get("state")
        version = state.get("version") if isinstance(state, dict) else None
        if type(version) is not int or version not in NETWORK_STATE_VERSIONS:
            raise ValueError("state must be a network state document of version 1, 2, 3 or 4")
        assert isinstance(state, dict)
        async with self._network_lock:
            document = self.network.replace(state)
            async with self._driver_errors():
                return await self.driver.apply_network(document)

    async def network_members(self, params: dict[str, Any]) -> dict[str, Any]:
        """Apply what changed in the remote groups (and, version 4, in the instances) of the
        state held (the order of mininova/protocol/network_members.py) and enforce the
        result; `stale_state` when the order does not fit the state held (the controller then
        sends it whole)."""
        async with self._network_lock:
            try:
                document = self.network.apply(params)
            except StaleState as exc:
                raise ProtocolError(STALE_STATE, str(exc)) from exc
            try:
                async with self._driver_errors():
                    return await self.driver.apply_network(document)
            except BaseException:
                self.network.state = None  # what is enforced is unknown: ask for it whole
                raise

    async def snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """Snapshot the root disk and upload it to the image API (`upload_url`, `capability`)."""
        uuid = _uuid(params)
        url, capability = params.get("upload_url"), params.get("capability")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("upload_url must be an http(s) URL")
        if not isinstance(capability, str) or not capability:
            raise ValueError("capability must be a non-empty string")
        with tempfile.TemporaryDirectory(prefix="mininova-snap-") as tmp:
            dest = Path(tmp) / "snapshot.qcow2"
            async with self.guest_lock(uuid), self._driver_errors():
                await self.driver.snapshot(uuid, dest)
            size = dest.stat().st_size
            await upload_file(dest, url, self.driver.controller, capability)
        return {"size": size}

    # -- resize / cold migration --------------------------------------------------------------

    async def resize_prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        """Power off and keep the guest aside; with `upload_url`/`capability` also stream its
        root disk (standalone qcow2) to the controller. Result: power state, sha256, size."""
        uuid = _uuid(params)
        url, capability = params.get("upload_url"), params.get("capability")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise ValueError("upload_url must be an http(s) URL")
        async with self.guest_lock(uuid), self._driver_errors():
            before = await self.driver.resize_prepare(uuid)
            if url is None:
                return {"power_state": before}
            if not isinstance(capability, str) or not capability:
                raise ValueError("capability must be a non-empty string")
            async with self._moved_disk_path() as dest:
                await self.driver.export_resize_disk(uuid, dest)
                digest = await asyncio.to_thread(_sha256, dest)
                size = dest.stat().st_size
                await upload_file(dest, url, self.driver.controller, capability)
        return {"power_state": before, "sha256": digest, "size": size}

    async def finish_resize(self, params: dict[str, Any]) -> dict[str, Any]:
        """Build the resized/migrated guest: from the copy kept on this host, or from the
        `disk` the controller holds (downloaded, its sha256 checked before use)."""
        if "instance" not in params:
            raise ValueError("finish_resize needs an instance")
        spec = spec_from_dict(params["instance"])
        power_on = bool(params.get("power_on", True))
        disk = params.get("disk")
        async with self.guest_lock(spec.uuid), self._driver_errors():
            if disk is None:
                return guest_to_dict(await self.driver.finish_resize(spec, power_on, None))
            if not isinstance(disk, dict) or not isinstance(disk.get("sha256"), str):
                raise ValueError("disk must name url, capability and sha256")
            async with self._moved_disk_path() as path:
                await download_file(
                    str(disk["url"]), path, self.driver.controller, str(disk["capability"])
                )
                digest = await asyncio.to_thread(_sha256, path)
                if digest != disk["sha256"]:
                    raise ProtocolError(
                        FAILED, f"moved disk checksum mismatch: got {digest}, want {disk['sha256']}"
                    )
                return guest_to_dict(await self.driver.finish_resize(spec, power_on, path))

    async def confirm_resize(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        async with self.guest_lock(uuid), self._driver_errors():
            await self.driver.confirm_resize(uuid)
        return {}

    async def finish_revert_resize(self, params: dict[str, Any]) -> dict[str, Any]:
        uuid = _uuid(params)
        async with self.guest_lock(uuid), self._driver_errors():
            info = await self.driver.finish_revert_resize(uuid, bool(params.get("power_on", True)))
        return guest_to_dict(info) if info is not None else {}


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


async def download_file(url: str, dest: Path, access: ControllerAccess, capability: str) -> None:
    """Stream `GET url` into `dest` (a migration's disk); ProtocolError on refusal."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=access.headers(capability), ssl=access.http_ssl) as resp,
    ):
        if resp.status >= 300:
            raise ProtocolError(
                FAILED, f"disk download refused: {resp.status} {(await resp.text())[:200]}"
            )
        with open(dest, "wb") as fh:
            async for block in resp.content.iter_chunked(1 << 20):
                await asyncio.to_thread(fh.write, block)


async def upload_file(path: Path, url: str, access: ControllerAccess, capability: str) -> None:
    """Stream a file to `PUT url` (Glance's image upload); ProtocolError on refusal."""

    async def chunks() -> AsyncIterator[bytes]:
        with open(path, "rb") as fh:
            while block := await asyncio.to_thread(fh.read, 1 << 20):
                yield block

    headers = {
        **access.headers(capability),
        "Content-Type": "application/octet-stream",
        "Content-Length": str(path.stat().st_size),
    }
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, data=chunks(), headers=headers, ssl=access.http_ssl) as resp,
    ):
        if resp.status >= 300:
            raise ProtocolError(
                FAILED, f"image upload refused: {resp.status} {(await resp.text())[:200]}"
            )
