"""The example systemd units (examples/systemd/) pass `systemd-analyze verify`.

`systemd-analyze verify` exits non-zero only for hard errors (a missing ExecStart binary, an
unknown section, no ExecStart=); an unknown key or an unparsable value is a warning printed as
`<unit file>:<line>: ...` with exit status 0. So a unit passes only when verify exits 0 *and*
prints nothing about the unit itself. Lines about other units (dependencies loaded from the
host, e.g. libvirtd.service) or the environment (containers without a running systemd) are
not ours and are ignored.

verify insists that ExecStart's binary exists, so each unit is copied into a temporary
directory with only the path of the binary (/opt/mininova/.venv/bin/mininova) replaced by an
executable stub; every other line is checked as shipped.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mininova import config as cfgmod

UNIT_DIR = Path(__file__).resolve().parent.parent / "examples" / "systemd"
BINARY = "/opt/mininova/.venv/bin/mininova"
UNITS = {"mininova.service": "serve", "mininova-agent.service": "agent"}


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("host capability missing: systemd-analyze not installed")
    return exe


def _run_verify(exe: str, unit: Path) -> tuple[int, list[str]]:
    env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat", LC_ALL="C")
    proc = subprocess.run(
        [exe, "verify", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=unit.parent,
    )
    return proc.returncode, (proc.stdout + proc.stderr).splitlines()


def verify_problems(exe: str, unit: Path) -> list[str]:
    """Why `systemd-analyze verify` rejects or warns about `unit`; [] when it is clean."""
    rc, lines = _run_verify(exe, unit)
    ours = [
        line
        for line in lines
        if line.startswith((f"{unit}:", f"{unit.name}:", f"Unit {unit.name} "))
    ]
    if rc != 0:
        return [f"systemd-analyze verify exited {rc}", *(ours or lines)]
    return ours


def stage(tmp_path: Path, name: str, text: str) -> Path:
    """Write `text` as unit `name` with ExecStart's binary replaced by an executable stub."""
    stub = tmp_path / "bin" / "mininova"
    if not stub.exists():
        stub.parent.mkdir(parents=True)
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    unit = unit_dir / name
    unit.write_text(text.replace(f"ExecStart={BINARY} ", f"ExecStart={stub} "))
    return unit


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"setting outside a section: {raw!r}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


@pytest.fixture
def analyze(tmp_path: Path) -> str:
    exe = _systemd_analyze()
    # Only skip when verify cannot check even a trivial valid unit on this host.
    sanity = stage(tmp_path, "sanity.service", f"[Service]\nType=exec\nExecStart={BINARY} serve\n")
    problems = verify_problems(exe, sanity)
    if problems:
        pytest.skip(
            "host capability missing: systemd-analyze verify rejects a valid unit here: "
            + " | ".join(problems)
        )
    return exe


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_verifies(analyze: str, tmp_path: Path, name: str) -> None:
    text = (UNIT_DIR / name).read_text()
    assert f"ExecStart={BINARY} {UNITS[name]}" in text
    unit = stage(tmp_path, name, text)
    assert f"ExecStart={BINARY} " not in unit.read_text()
    assert verify_problems(analyze, unit) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Restart=on-failure", "Restrat=on-failure"),  # unknown key: only a warning, rc 0
        ("Restart=on-failure", "Restart=sometimes"),  # unparsable value: warning, rc 0
        ("[Service]", "[Servce]"),  # unknown section: rc 1
        (f"ExecStart={BINARY} ", "ExecStart=/nonexistent/mininova "),  # missing binary: rc 1
    ],
)
@pytest.mark.parametrize("name", sorted(UNITS))
def test_broken_unit_is_rejected(
    analyze: str, tmp_path: Path, name: str, old: str, new: str
) -> None:
    text = (UNIT_DIR / name).read_text()
    assert old in text
    unit = stage(tmp_path, name, text.replace(old, new, 1))
    assert verify_problems(analyze, unit) != []


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_settings(name: str) -> None:
    """What the README promises, and no hardening that would break the service."""
    unit = parse_unit((UNIT_DIR / name).read_text())
    service = unit["Service"]
    serve = UNITS[name] == "serve"
    assert values(service, "Type") in (["simple"], ["exec"])
    assert values(service, "Restart") == ["on-failure"]
    env_file = "/etc/mininova/serve.env" if serve else "/etc/mininova/agent.env"
    assert values(service, "EnvironmentFile") == [f"-{env_file}"]
    assert values(service, "StateDirectory") == ["mininova" if serve else "mininova-agent"]
    assert values(service, "StateDirectoryMode") == ["0700"]
    assert values(service, "NoNewPrivileges") == ["yes"]
    assert values(unit["Install"], "WantedBy") == ["multi-user.target"]
    # Environment= names must be real settings (MININOVA_<NAME> / MININOVA_AGENT_<NAME>).
    cls, prefix = (
        (cfgmod.ServeConfig, "MININOVA_") if serve else (cfgmod.AgentConfig, "MININOVA_AGENT_")
    )
    names = {f.name.upper() for f in dataclasses.fields(cls)}
    for assignment in values(service, "Environment"):
        var = assignment.split("=", 1)[0]
        assert var.startswith(prefix) and var[len(prefix) :] in names, var
    if not serve:
        after = " ".join(values(unit["Unit"], "After")).split()
        wants = " ".join(values(unit["Unit"], "Wants")).split()
        for dep in ("libvirtd.service", "network-online.target"):
            assert dep in after and dep in wants
        # QEMU runs under libvirtd; the agent still needs /dev/kvm visible, /var/lib writable
        # (instances_dir, /var/lib/libvirt/mininova) and libvirtd's socket under /run.
        assert values(service, "PrivateDevices") in ([], ["no"])
        assert values(service, "ProtectSystem") in ([], ["full"], ["yes"])
        assert values(service, "PrivateNetwork") in ([], ["no"])
        assert values(service, "RestrictAddressFamilies") == []
        assert "libvirt/mininova" not in " ".join(values(service, "StateDirectory"))
