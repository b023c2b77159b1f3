"""The one-way layers of pyproject.toml's [tool.importlinter] hold, and a back-edge breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the `mininova` package found in `cwd` (its pyproject.toml)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_real_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("store/__init__.py", "import mininova.api", "Controller side: one-way layers"),
        ("scheduler/__init__.py", "import mininova.conductor", "Controller side: one-way layers"),
        ("agent/tunnel.py", "import mininova.consoleproxy", "Agent side: agent and virt"),
        ("quota.py", "import aiohttp.web", "No aiohttp in the L0-L2 domain packages"),
    ],
)
def test_back_edge_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    shutil.copytree(
        ROOT / "mininova", tmp_path / "mininova", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "mininova" / module
    target.write_text(target.read_text() + f"\n{line}  # injected back-edge\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
    dotted = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    assert f"mininova.{dotted}" in result.stdout  # the offending importer is named
