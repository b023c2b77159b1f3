"""The console log reader the libvirt driver uses (`mininova.virt.console_log`), on plain
files: only the tail is read, continued from virtlogd's newest backup after a rotation."""

from __future__ import annotations

from pathlib import Path

from mininova.virt import console_log


def test_reads_only_the_tail(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"".join(b"line %05d\n" % n for n in range(100_000)))  # ~1.1 MB
    tail = console_log.read_tail(log, 4096)
    assert len(tail) == 4096
    assert tail.endswith(b"line 99999\n")
    assert console_log.read_tail(log, 10**9) == log.read_bytes()


def test_a_fresh_rotation_continues_from_the_backup(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    (tmp_path / "console.log.0").write_bytes(b"a" * 5000 + b"old end\n")
    (tmp_path / "console.log.1").write_bytes(b"older\n" * 1000)
    log.write_bytes(b"new start\n")
    tail = console_log.read_tail(log, 100)
    assert len(tail) == 100
    assert tail.endswith(b"old end\nnew start\n")
    assert b"older" not in tail


def test_a_character_cut_by_the_tail_is_dropped() -> None:
    text = "é" * 10 + "\nlogin: "
    data = text.encode()
    cut = console_log.decode(console_log.tail_bytes(data, len(data) - 1))  # half an "é"
    assert cut == "é" * 9 + "\nlogin: "
    assert console_log.tail_text(text, 1000) == text
    assert console_log.tail_text(text, 8) == "\nlogin: "
