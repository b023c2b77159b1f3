"""The README's configuration table names every serve and agent setting (the limits included)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from mininova.config import AgentConfig, ServeConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def _table(heading: str) -> str:
    """The rows of the README table whose header row starts with `heading`."""
    text = README.read_text()
    start = text.index(f"| {heading} |")
    end = text.find("\n\n", start)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize(
    ("config", "heading"), [(ServeConfig, "serve setting"), (AgentConfig, "agent setting")]
)
def test_every_setting_has_a_row_with_its_default(config: type, heading: str) -> None:
    rows = [line for line in _table(heading).splitlines() if line.startswith("| `")]
    missing = [
        f.name
        for f in fields(config)
        if f.name != "extra" and not any(f"`{f.name}`" in row.split(" | ")[0] for row in rows)
    ]
    assert not missing, f"README.md's '{heading}' table has no row for {missing}"
