"""Nothing outside `mininova/store/` writes SQL: no SQLAlchemy, no schema tables, no SQL text."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mininova"
STORE = PACKAGE / "store"
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE"
    r"|ALTER\s+TABLE|DROP\s+TABLE|PRAGMA\s)",
    re.IGNORECASE | re.DOTALL,
)
RAW_METHODS = {"fetchone", "fetchall"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            module = node.module or "" if isinstance(node, ast.ImportFrom) else ""
            for name in [module, *names]:
                if name.split(".")[0] in ("sqlalchemy", "sqlite3", "aiosqlite", "asyncpg"):
                    found.append(f"{where}: imports {name}")
                if name.startswith("mininova.store.schema") or (
                    module == "mininova.store"
                    and any(a.name in ("schema", "engine") for a in node.names)
                ):
                    found.append(f"{where}: imports the schema/engine of the store")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if SQL_TEXT.match(node.value):
                found.append(f"{where}: SQL text {node.value[:50]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in RAW_METHODS:
            found.append(f"{where}: raw store method .{node.attr}()")
    return found


def test_no_sql_outside_the_store() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        problems += _violations(path)
    assert problems == [], "\n".join(problems)


def test_the_check_catches_sql(tmp_path: Path) -> None:
    bad = PACKAGE / "_sql_probe_for_test.py"
    bad.write_text(
        "from sqlalchemy import select\n"
        "async def f(store):\n"
        "    return await store.fetchone('SELECT id FROM instances WHERE uuid = ?', ('x',))\n"
    )
    try:
        problems = _violations(bad)
    finally:
        bad.unlink()
    assert len(problems) == 3, problems
