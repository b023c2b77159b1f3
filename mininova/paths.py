"""Where mininova keeps its files, and the file modes that keep them private.

As root the controller lives in `/var/lib/mininova` and an agent in `/var/lib/mininova-agent`;
a normal user gets XDG data directories. Both are 0700. Guest disks cannot live there (QEMU
runs as an unprivileged user), so the agent keeps them in an instances directory under
`/var/lib/libvirt/mininova/<host>`, reachable by the QEMU user's group only.
"""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

SYSTEM_STATE = Path("/var/lib")
INSTANCES_ROOT = Path("/var/lib/libvirt/mininova")
QEMU_CONF = Path("/etc/libvirt/qemu.conf")


def is_root() -> bool:
    return os.geteuid() == 0


def default_data_dir(name: str) -> Path:
    """`/var/lib/<name>` as root, else `$XDG_DATA_HOME/<name>` (~/.local/share/<name>)."""
    if is_root():
        return SYSTEM_STATE / name
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(xdg) / name


def default_instances_dir(host: str) -> Path:
    """Guest files of compute host `host`: outside every 0700 data dir."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", host) or "host"
    if is_root():
        return INSTANCES_ROOT / safe
    return default_data_dir("mininova-agent-instances") / safe


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) and make it 0700; returns it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(
    path: Path, text: str | bytes, mode: int = 0o600, *, durable: bool = True
) -> None:
    """Write a file atomically, created with `mode` from the start (never readable by others);
    `durable`: on disk (fsynced) before it replaces the old one."""
    data = text.encode() if isinstance(text, str) else text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def tighten(path: Path, mode: int = 0o600) -> None:
    """chmod an existing file (no error if it is missing)."""
    with contextlib.suppress(FileNotFoundError):
        path.chmod(mode)


@dataclass(frozen=True)
class QemuIdentity:
    """The unprivileged user QEMU runs as under qemu:///system."""

    user: str
    uid: int
    gid: int
    groups: frozenset[int]


def _conf_value(text: str, key: str) -> str | None:
    match = re.search(rf'^\s*{key}\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else None


def qemu_identity(conf: Path = QEMU_CONF) -> QemuIdentity | None:
    """Read `user`/`group` from qemu.conf, else the distribution default (libvirt-qemu, qemu)."""
    text = ""
    with contextlib.suppress(OSError):
        text = conf.read_text()
    names = [n for n in (_conf_value(text, "user"), "libvirt-qemu", "qemu") if n]
    for name in names:
        try:  # qemu.conf allows "+<uid>" for a numeric id
            entry = pwd.getpwuid(int(name[1:])) if name.startswith("+") else pwd.getpwnam(name)
        except (KeyError, ValueError):
            continue
        gid = entry.pw_gid
        group = _conf_value(text, "group")
        if group:
            with contextlib.suppress(KeyError, ValueError):
                gid = grp.getgrnam(group).gr_gid if not group.startswith("+") else int(group[1:])
        groups = {gid, entry.pw_gid}
        groups |= {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}
        return QemuIdentity(entry.pw_name, entry.pw_uid, gid, frozenset(groups))
    return None


def _can_search(st: os.stat_result, who: QemuIdentity) -> bool:
    """May `who` traverse this directory (the owner, group or other x bit that applies)?"""
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in who.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def qemu_access_problem(path: Path, who: QemuIdentity) -> str | None:
    """Why `who` cannot open files in directory `path` (None when it can)."""
    path = path.resolve()
    for directory in [*reversed(path.parents), path]:
        try:
            st = os.stat(directory)
        except OSError as exc:
            return f"cannot stat {directory}: {exc.strerror}"
        if not _can_search(st, who):
            return (
                f"{directory} (mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid},"
                f" group gid {st.st_gid}) is not searchable by the QEMU user {who.user}"
            )
    return None
