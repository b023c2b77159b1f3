"""A tiny but real RFB 3.8 (VNC) server for the fake driver.

No authentication (security type 1), a 320x200 framebuffer, raw encoding only. The picture is a
set of colored blocks (a title bar, color bars, a checkerboard and a row of "key" tiles); every
key press flips the palette phase and lights one more tile, so a browser test can see that input
reached the guest. RFB 3.3 and 3.7 clients are accepted as well. Pointer events and cut text are
ignored. The client's SetPixelFormat (8/16/32 bpp true colour, either byte order) is honored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

WIDTH = 320
HEIGHT = 200
# (bpp, depth, big_endian, true_colour, rmax, gmax, bmax, rshift, gshift, bshift)
DEFAULT_FORMAT = (32, 24, 0, 1, 255, 255, 255, 16, 8, 0)

PALETTES = [
    [(20, 24, 40), (230, 60, 60), (60, 200, 90), (70, 110, 230), (240, 200, 40), (250, 250, 250)],
    [(40, 16, 48), (40, 200, 220), (230, 90, 200), (250, 160, 30), (90, 230, 120), (16, 16, 16)],
]


@dataclass
class FakeVncState:
    """What the server saw; shared by all clients of one server (tests inspect it)."""

    name: str
    width: int = WIDTH
    height: int = HEIGHT
    keys: list[int] = field(default_factory=list)
    clients: int = 0
    updates_sent: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def phase(self) -> int:
        return len(self.keys)


def _regions(state: FakeVncState) -> list[tuple[int, int, int, int, int]]:
    """(x, y, w, h, palette index) rectangles, painted in order over background index 0."""
    w = state.width
    rects = [(0, 0, w, 24, 3)]  # title bar
    bar_w = w // 4
    for i in range(4):  # color bars
        rects.append((i * bar_w, 32, bar_w, 48, 1 + (i + state.phase) % 5))
    cell = 10
    for cy in range(0, 60, cell):  # checkerboard
        for cx in range(0, 120, cell):
            if (cx // cell + cy // cell) % 2 == 0:
                rects.append((16 + cx, 96 + cy, cell, cell, 5))
    for i in range(min(state.phase, 12)):  # one lit tile per key press
        rects.append((160 + (i % 6) * 24, 100 + (i // 6) * 24, 18, 18, 4))
    # "text": a few short blocks in the title bar, width derived from the name
    x = 8
    for ch in state.name[:24]:
        if ch != " ":
            rects.append((x, 8, 4, 8, 5))
        x += 6
    return rects


def _index_grid(state: FakeVncState) -> list[bytearray]:
    rows = [bytearray(state.width) for _ in range(state.height)]
    for x, y, rw, rh, idx in _regions(state):
        x2, y2 = min(x + rw, state.width), min(y + rh, state.height)
        if x2 <= x or y2 <= y:
            continue
        seg = bytes([idx]) * (x2 - x)
        for row in rows[y:y2]:
            row[x:x2] = seg
    return rows


def _encode_color(rgb: tuple[int, int, int], fmt: tuple[int, ...]) -> bytes:
    bpp, _depth, big, _tc, rmax, gmax, bmax, rs, gs, bs = fmt
    r, g, b = rgb
    value = ((r * rmax // 255) << rs) | ((g * gmax // 255) << gs) | ((b * bmax // 255) << bs)
    nbytes = max(1, bpp // 8)
    value &= (1 << (8 * nbytes)) - 1
    return value.to_bytes(nbytes, "big" if big else "little")


def render(state: FakeVncState, fmt: tuple[int, ...], x: int, y: int, w: int, h: int) -> bytes:
    """Raw pixel data of a rectangle in the client's pixel format."""
    palette = PALETTES[state.phase % len(PALETTES)]
    colors = [_encode_color(c, fmt) for c in palette]
    table = {i: colors[i] for i in range(len(colors))}
    rows = _index_grid(state)
    out = bytearray()
    cache: dict[bytes, bytes] = {}
    for row in rows[y : y + h]:
        key = bytes(row[x : x + w])
        data = cache.get(key)
        if data is None:
            data = b"".join(table[i] for i in key)
            cache[key] = data
        out += data
    return bytes(out)


async def _read_exact(reader: asyncio.StreamReader, n: int) -> bytes:
    return await reader.readexactly(n)


async def _session(
    state: FakeVncState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"RFB 003.008\n")
    await writer.drain()
    version = await _read_exact(reader, 12)
    if not version.startswith(b"RFB 003."):
        raise ValueError(f"not an RFB client: {version!r}")
    minor = int(version[8:11])
    if minor >= 7:
        writer.write(b"\x01\x01")  # one security type: None
        await writer.drain()
        chosen = await _read_exact(reader, 1)
        if chosen != b"\x01":
            writer.write(struct.pack(">I", 1) + struct.pack(">I", 19) + b"unsupported security")
            await writer.drain()
            return
        if minor >= 8:
            writer.write(struct.pack(">I", 0))  # SecurityResult OK
    else:
        writer.write(struct.pack(">I", 1))  # 3.3: the server picks None
    await _read_exact(reader, 1)  # ClientInit (shared flag)
    fmt = DEFAULT_FORMAT
    name = state.name.encode("utf-8")[:255]
    writer.write(struct.pack(">HHBBBBHHHBBB3xI", state.width, state.height, *fmt, len(name)) + name)
    await writer.drain()

    seen_generation = -1
    pending: tuple[int, int, int, int] | None = None

    async def send_update(rect: tuple[int, int, int, int]) -> None:
        nonlocal seen_generation
        x, y, w, h = rect
        x, y = min(x, state.width), min(y, state.height)
        w, h = min(w, state.width - x), min(h, state.height - y)
        seen_generation = state.generation
        header = struct.pack(">BxH", 0, 1) + struct.pack(">HHHHi", x, y, w, h, 0)
        writer.write(header + render(state, fmt, x, y, w, h))
        state.updates_sent += 1
        await writer.drain()

    async def next_message() -> bytes:
        return await _read_exact(reader, 1)

    read_task: asyncio.Task[bytes] | None = None
    try:
        while True:
            if read_task is None:
                read_task = asyncio.ensure_future(next_message())
            waiter = asyncio.ensure_future(state.changed.wait())
            try:
                await asyncio.wait({read_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if pending is not None and state.generation != seen_generation:
                rect, pending = pending, None
                await send_update(rect)
            if not read_task.done():
                continue
            kind = read_task.result()[0]
            read_task = None
            if kind == 0:  # SetPixelFormat
                data = await _read_exact(reader, 19)
                pf = struct.unpack(">BBBBHHHBBB3x", data[3:])
                if pf[0] in (8, 16, 32) and pf[3]:
                    fmt = pf
            elif kind == 2:  # SetEncodings
                (count,) = struct.unpack(">xH", await _read_exact(reader, 3))
                await _read_exact(reader, 4 * count)
            elif kind == 3:  # FramebufferUpdateRequest
                incremental, *rect = struct.unpack(">BHHHH", await _read_exact(reader, 9))
                if not incremental or state.generation != seen_generation:
                    await send_update(tuple(rect))
                else:
                    pending = tuple(rect)  # answered when something changes
            elif kind == 4:  # KeyEvent
                down, key = struct.unpack(">BxxI", await _read_exact(reader, 7))
                if down:
                    state.keys.append(key)
                    state.generation += 1
                    changed, state.changed = state.changed, asyncio.Event()
                    changed.set()
            elif kind == 5:  # PointerEvent
                await _read_exact(reader, 5)
            elif kind == 6:  # ClientCutText
                (length,) = struct.unpack(">xxxI", await _read_exact(reader, 7))
                await _read_exact(reader, min(length, 1 << 20))
            else:
                raise ValueError(f"unsupported RFB client message type {kind}")
    finally:
        if read_task is not None:
            read_task.cancel()


async def serve_fake_vnc(
    name: str, *, host: str = "127.0.0.1", width: int = WIDTH, height: int = HEIGHT
) -> tuple[asyncio.AbstractServer, int]:
    """Start a loopback RFB 3.8 server; returns (server, port). `server.fake_vnc` is the
    FakeVncState (keys pressed, updates sent) shared by its clients."""
    state = FakeVncState(name=name, width=width, height=height)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.clients += 1
        state.writers.add(writer)
        try:
            await _session(state, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as exc:
            log.warning("fake VNC %s: client error: %s", name, exc)
        finally:
            state.clients -= 1
            state.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(client, host, 0)
    server.fake_vnc = state  # type: ignore[attr-defined]
    stop_listening = server.close

    def close() -> None:
        # The guest's VNC server goes away (power off, destroy): drop its clients too.
        stop_listening()
        for writer in list(state.writers):
            writer.close()

    server.close = close  # type: ignore[method-assign]
    port = server.sockets[0].getsockname()[1]
    return server, port
