"""Image cache (`<instances>/_base/<image id>`) and qcow2 overlays, via aiohttp and qemu-img."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import aiohttp

from mininova.virt.driver import ControllerAccess, DriverError, ImageSpec

LOG = logging.getLogger(__name__)
CHUNK = 1 << 20
GiB = 1 << 30
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALLOWED_FORMATS = ("raw", "qcow2")


async def run(*argv: str, timeout: float = 120) -> str:
    """Run a command without blocking the loop; DriverError with its stderr on failure."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DriverError(f"{argv[0]} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise DriverError(f"{argv[0]} failed: {msg}")
    return out.decode(errors="replace")


async def qemu_img_info(path: Path) -> dict[str, Any]:
    """`qemu-img info` of a file whose format qemu-img probes itself."""
    return json.loads(await run("qemu-img", "info", "--output=json", str(path)))


async def inspect_image(path: Path) -> tuple[str, int]:
    """(real format, virtual size) of a downloaded image; rejects anything unsafe to boot.

    The uploader's disk_format is never trusted: a "raw" image that is really qcow2 with a
    backing file (or an external data file) could make QEMU open arbitrary host files."""
    info = await qemu_img_info(path)
    fmt = info.get("format")
    if fmt not in ALLOWED_FORMATS:
        raise DriverError(f"Unsupported image format {fmt!r} (allowed: raw, qcow2)")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise DriverError("Image has a backing file; refusing to use it")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise DriverError("Image has an external data file; refusing to use it")
    return fmt, int(info.get("virtual-size", 0))


async def create_overlay(
    base: Path, base_format: str, virtual_size: int, dest: Path, disk_gb: int
) -> None:
    """qcow2 overlay on `base`, grown to disk_gb when that exceeds the image's size."""
    argv = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        base_format,
        "-b",
        str(base.resolve()),
        str(dest),
    ]
    if disk_gb * GiB > virtual_size:
        argv.append(f"{disk_gb}G")
    await run(*argv)


class ImageCache:
    """Downloads each image once (per-image lock), verifies its md5, renames it into place."""

    def __init__(
        self, base_dir: Path, controller: ControllerAccess, *, timeout: float = 3600
    ) -> None:
        self.base_dir = base_dir
        self.controller = controller
        self.timeout = timeout
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, image_id: str) -> Path:
        if not _SAFE_ID.match(image_id):
            raise DriverError(f"Invalid image id {image_id!r}")
        return self.base_dir / image_id

    async def fetch(self, image: ImageSpec) -> Path:
        """Path of the cached image file, downloading it first if needed."""
        dest = self.path_for(image.id)
        lock = self._locks.setdefault(image.id, asyncio.Lock())
        async with lock:
            if dest.exists():
                return dest
            await asyncio.to_thread(self.base_dir.mkdir, parents=True, exist_ok=True)
            await self._download(image, dest)
            return dest

    async def _download(self, image: ImageSpec, dest: Path) -> None:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        md5 = hashlib.md5(usedforsecurity=False)
        LOG.info("downloading image %s from %s", image.id, image.url)
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout, sock_read=120)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(
                    image.url,
                    headers=self.controller.headers(image.capability),
                    ssl=self.controller.http_ssl,
                ) as resp,
            ):
                if resp.status != 200:
                    raise DriverError(f"Image {image.id} download failed: HTTP {resp.status}")
                with open(tmp, "wb") as fh:  # noqa: ASYNC230 - writes run in a thread below
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        md5.update(chunk)
                        await asyncio.to_thread(fh.write, chunk)
                    await asyncio.to_thread(os.fsync, fh.fileno())
            got = md5.hexdigest()
            want = (image.checksum or "").lower()
            if want and got != want:
                raise DriverError(f"Image {image.id} checksum mismatch: expected {want}, got {got}")
            os.chmod(tmp, 0o600)  # the driver shares it with the QEMU group (0640) before use
            os.replace(tmp, dest)
        except aiohttp.ClientError as exc:
            raise DriverError(f"Image {image.id} download failed: {exc}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
