"""Drive the web console in headless Chromium (Playwright, async API) and read its pixels.

Reusable by any console test (fake VNC or a real libvirt guest):

    reason = browser_skip_reason()
    if reason: pytest.skip(reason)
    async with console_page(url) as console:
        await console.wait_connected()
        before = await console.screen()
        await console.press("a")
        after = await console.wait_screen_change(before)

Uses Debian's /usr/bin/chromium (never `playwright install`), a fresh user data dir per page.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.kit.wait import wait_for

CHROMIUM = Path(os.environ.get("MININOVA_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOVNC = Path(__file__).resolve().parents[2] / "webui/node_modules/@novnc/novnc/core/rfb.js"


def spki_pin(cert_pem: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the first certificate in a PEM file."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def browser_skip_reason() -> str | None:
    """Why a browser test cannot run here (None when it can)."""
    if not CHROMIUM.exists():
        return "chromium not installed: run scripts/host-setup.sh --browser"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "python playwright not installed: pip install -e '.[test]'"
    if not NOVNC.exists():
        return "noVNC not installed (webui/node_modules missing): run scripts/webui-setup.sh"
    return None


@dataclass
class Image:
    width: int
    height: int
    rgba: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int, int]:
        i = (y * self.width + x) * 4
        return tuple(self.rgba[i : i + 4])  # type: ignore[return-value]

    def colors(self) -> set[bytes]:
        return {self.rgba[i : i + 4] for i in range(0, len(self.rgba), 4)}

    def is_blank(self) -> bool:
        return len(self.colors()) <= 1

    def differing_pixels(self, other: Image) -> int:
        if (self.width, self.height) != (other.width, other.height):
            return self.width * self.height
        a, b = self.rgba, other.rgba
        return sum(1 for i in range(0, len(a), 4) if a[i : i + 4] != b[i : i + 4])


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium screenshots are)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, bytearray()
    width = height = ctype = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG (depth {depth}, type {ctype})")
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif ftype == 4:
                ul = prev[i - bpp] if i >= bpp else 0
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        if bpp == 4:
            out += line
        else:
            for i in range(0, stride, 3):
                out += line[i : i + 3] + b"\xff"
    return Image(width, height, bytes(out))


@dataclass
class ConsolePage:
    page: Any
    console_log: list[str] = field(default_factory=list)

    async def state(self) -> str:
        return await self.page.evaluate("document.body.dataset.state")

    async def wait_state(self, *states: str, timeout: float = 20.0) -> str:
        seen: list[str] = [""]

        async def reached() -> str | None:
            seen[0] = await self.state()
            return seen[0] if seen[0] in states else None

        try:
            return await wait_for(reached, timeout, 0.1)
        except AssertionError:
            raise AssertionError(
                f"console page stayed {seen[0]!r}, wanted {states}; "
                f"message={await self.message()!r} log={self.console_log}"
            ) from None

    async def message(self) -> str:
        box = self.page.locator("#message")
        return (await box.text_content() or "") if await box.is_visible() else ""

    async def title_name(self) -> str:
        return await self.page.locator("#name").text_content() or ""

    async def screen(self) -> Image:
        """Screenshot of the noVNC canvas, decoded."""
        png = await self.page.locator("#screen canvas").screenshot(animations="disabled")
        return decode_png(png)

    async def wait_connected(self, timeout: float = 20.0) -> Image:
        """Wait until noVNC is connected and the canvas shows something."""
        await self.wait_state("connected", timeout=timeout)

        async def drawn() -> Image | None:
            image = await self.screen()
            return None if image.is_blank() else image

        return await wait_for(drawn, timeout, 0.2, "the console canvas to show something")

    async def press(self, key: str = "a") -> None:
        await self.page.locator("#screen canvas").click()
        await self.page.keyboard.press(key)

    async def ctrl_alt_del(self) -> None:
        await self.page.locator("#cad").click()

    async def wait_screen_change(
        self, before: Image, timeout: float = 10.0, min_pixels: int = 50
    ) -> Image:

        async def changed() -> Image | None:
            image = await self.screen()
            return image if image.differing_pixels(before) >= min_pixels else None

        return await wait_for(changed, timeout, 0.2, "the console canvas to change")


@asynccontextmanager
async def console_page(
    url: str, *, viewport: tuple[int, int] = (1024, 768), server_cert: Path | None = None
) -> AsyncIterator[ConsolePage]:
    """Open `url` (a console URL from the API) in headless Chromium.

    `server_cert`: the controller's certificate (PEM); Chromium accepts exactly that key
    (an SPKI pin), as a browser that imported the cloud CA would.
    """
    from playwright.async_api import async_playwright

    user_data = tempfile.mkdtemp(prefix="mininova-chromium-")
    try:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                user_data,
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS
                + (
                    [f"--ignore-certificate-errors-spki-list={spki_pin(server_cert)}"]
                    if server_cert
                    else []
                ),
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                console = ConsolePage(page)
                page.on(
                    "console", lambda msg: console.console_log.append(f"{msg.type}: {msg.text}")
                )
                page.on("pageerror", lambda err: console.console_log.append(f"error: {err}"))
                await page.goto(url)
                yield console
            finally:
                await context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)
