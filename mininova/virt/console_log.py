"""Bounded serial console logs: what `console_output` returns is at most the log's tail.

As Nova's libvirt driver (which returns the last 100 KiB, `MAX_CONSOLE_BYTES`), console
output is the newest `max_bytes` of the log; the agent's `console_log_max_bytes` sets the
bound. Reading seeks to the tail, so a log of any size costs at most `max_bytes` of memory.
virtlogd (libvirt's default log handler for file chardevs) rotates `console.log` into
`console.log.0`, … at its `max_size`; right after a rotation the tail continues in the
newest backup, which is read too.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_BYTES = 100 * 1024  # Nova's MAX_CONSOLE_BYTES


def tail_bytes(data: bytes, max_bytes: int) -> bytes:
    """The last `max_bytes` of `data` (all of it when it is shorter)."""
    if max_bytes <= 0:
        return b""
    return data[-max_bytes:] if len(data) > max_bytes else data


def decode(data: bytes) -> str:
    """Console bytes as text: invalid UTF-8 replaced, and a character cut in two by the tail
    (continuation bytes at the start) dropped rather than shown as garbage."""
    start = 0
    while start < min(len(data), 3) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:].decode("utf-8", errors="replace")


def tail_text(text: str, max_bytes: int) -> str:
    """`text` cut to its last `max_bytes` bytes of UTF-8."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text
    return decode(tail_bytes(data, max_bytes))


def _read_tail(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            fh.seek(size - max_bytes)
        return fh.read(max_bytes)


def read_tail(path: Path, max_bytes: int) -> bytes:
    """The last `max_bytes` of the log at `path`, continued from its newest rotated backup
    (`<path>.0`) when the live file is shorter. FileNotFoundError if `path` is missing."""
    data = _read_tail(path, max_bytes)
    if len(data) < max_bytes:
        try:
            data = _read_tail(path.with_name(path.name + ".0"), max_bytes - len(data)) + data
        except FileNotFoundError:
            pass
    return data
