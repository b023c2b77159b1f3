"""The microversion registry: the generated doc is current, every gate names a registered
constant, negotiation follows the registry, and field tables switch at their versions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mininova.api import microversion as negotiation
from mininova.api import microversions as mvs
from mininova.api.compute.flavors import DETAIL_FIELDS
from mininova.api.compute.server_groups import GROUP_FIELDS
from mininova.api.compute.views import servers as server_views
from mininova.api.errors import BadRequest, NotAcceptable
from mininova.api.microversions import V2_1, V2_8, V2_9, V2_63, V2_64, V2_89, V2_90, V2_100
from tests.conftest import ApiClient

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mininova"
REGISTRY = PACKAGE / "api" / "microversions.py"
GATES = {"mv_at_least", "at_least", "in_range"}


# ------------------------------------------------------------------------------ the doc


def test_docs_microversions_md_is_generated_from_the_registry() -> None:
    doc = ROOT / "docs" / "microversions.md"
    assert doc.read_text() == mvs.markdown(), (
        "docs/microversions.md is stale: run "
        "`.venv/bin/python -m mininova.api.microversions --markdown > docs/microversions.md`"
    )


def test_registry_is_complete_and_ordered() -> None:
    versions = mvs.registered()
    assert [v.text for v in versions] == [f"2.{n}" for n in range(1, 101)]
    assert mvs.MIN is V2_1 and mvs.MAX is V2_100
    assert all(v.description and "\n" not in v.description for v in versions)
    assert mvs.lookup("2.53") is mvs.V2_53 and mvs.lookup((2, 53)) is mvs.V2_53


# --------------------------------------------------------------- gates name constants only


def _sources() -> list[tuple[Path, ast.Module]]:
    return [
        (p, ast.parse(p.read_text(), str(p)))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p != REGISTRY
    ]


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _is_version(node: ast.AST | None, allow_none: bool = False) -> bool:
    """A registered V2_xx constant (or a conditional choosing between such constants)."""
    if node is None:
        return allow_none
    if isinstance(node, ast.Constant) and node.value is None:
        return allow_none
    if isinstance(node, ast.IfExp):
        return _is_version(node.body, allow_none) and _is_version(node.orelse, allow_none)
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    if not isinstance(node, ast.Name | ast.Attribute) or name is None:
        return False
    return isinstance(getattr(mvs, name, None), mvs.Microversion)


def _module_tables(tree: ast.Module) -> dict[str, ast.AST]:
    return {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }


def test_every_gate_names_a_registered_constant() -> None:
    bad: list[str] = []
    gates = 0
    for path, tree in _sources():
        where = path.relative_to(ROOT).as_posix()
        tables = _module_tables(tree)
        # A gate defined in terms of another (context.mv_at_least) forwards its parameter.
        forwarding = {
            id(call)
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef) and fn.name in GATES
            for call in ast.walk(fn)
            if isinstance(call, ast.Call)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in forwarding:
                name = _call_name(node)
                if name in GATES:
                    gates += 1
                    first, *versions = node.args
                    for i, arg in enumerate(versions):
                        if not _is_version(arg, allow_none=(name == "in_range" and i == 1)):
                            bad.append(f"{where}:{node.lineno} {name}({ast.unparse(arg)})")
                elif name == "Field":
                    gates += 1
                    if len(node.args) > 2:
                        bad.append(f"{where}:{node.lineno} Field: pass since/until by keyword")
                    for kw in node.keywords:
                        if kw.arg == "since" and not _is_version(kw.value):
                            bad.append(
                                f"{where}:{node.lineno} Field(since={ast.unparse(kw.value)})"
                            )
                        if kw.arg == "until" and not _is_version(kw.value, allow_none=True):
                            bad.append(
                                f"{where}:{node.lineno} Field(until={ast.unparse(kw.value)})"
                            )
                elif name == "schema_for":
                    gates += 1
                    choices = node.args[1]
                    if isinstance(choices, ast.Name):
                        choices = tables.get(choices.id, choices)
                    if not isinstance(choices, ast.List | ast.Tuple):
                        bad.append(f"{where}:{node.lineno} schema_for: choices not a literal table")
                        continue
                    for row in choices.elts:
                        ok = (
                            isinstance(row, ast.Tuple)
                            and _is_version(row.elts[0])
                            and _is_version(row.elts[1], allow_none=True)
                        )
                        if not ok:
                            bad.append(f"{where}:{row.lineno} schema_for row {ast.unparse(row)}")
            # The old style: `mv >= (2, 98)` / `microversion(request) < (2, 71)`.
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if (
                        isinstance(side, ast.Tuple)
                        and len(side.elts) == 2
                        and all(isinstance(e, ast.Constant) for e in side.elts)
                        and getattr(side.elts[0], "value", None) == 2
                    ):
                        bad.append(f"{where}:{node.lineno} compares with {ast.unparse(side)}")
    assert gates > 50, "the scan found too few gates: did the helpers get renamed?"
    assert not bad, "unregistered or literal microversions:\n" + "\n".join(bad)


def test_unregistered_versions_are_refused_where_they_are_declared() -> None:
    with pytest.raises(TypeError):
        mvs.at_least((2, 60), "2.53")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mvs.at_least((2, 60), (2, 53))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mvs.Field("x", lambda c: c, since=(2, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mvs.Field("x", lambda c: c, since=V2_9, until=V2_8)
    with pytest.raises(TypeError):
        mvs.Microversion(2, 101, "not registered")
    with pytest.raises(KeyError):
        mvs.lookup("2.101")
    with pytest.raises(ValueError):
        mvs.register("2.50", "out of order")


# ------------------------------------------------------------------------------ negotiation


def test_negotiation_follows_the_registry() -> None:
    assert negotiation.parse_headers({}) is mvs.MIN
    assert negotiation.parse_headers({"OpenStack-API-Version": "compute latest"}) is mvs.MAX
    assert negotiation.parse_headers({"X-OpenStack-Nova-API-Version": "2.53"}) is mvs.V2_53
    assert negotiation.parse_headers({"OpenStack-API-Version": "volume 3.1, compute 2.9"}) is V2_9
    for wrong in ("2.101", "2.0", "3.1", "1.9"):
        with pytest.raises(NotAcceptable):
            negotiation.parse_headers({"OpenStack-API-Version": f"compute {wrong}"})
    with pytest.raises(BadRequest):
        negotiation.parse_headers({"OpenStack-API-Version": "compute two"})


async def test_latest_is_max_and_out_of_range_is_406_over_http(api: ApiClient) -> None:
    status, _, resp = await api.get("/compute/v2.1/servers", version="latest")
    assert status == 200 and resp.headers["OpenStack-API-Version"] == "compute 2.100"
    status, body, _ = await api.get("/compute/v2.1/servers", version="2.101")
    assert status == 406 and "maximum is 2.100" in str(body)
    status, body, _ = await api.get("/compute/v2.1", token=False)
    assert body["version"]["version"] == "2.100" and body["version"]["min_version"] == "2.1"


# ------------------------------------------------------------------------------ field tables


def _server(admin: bool = False) -> server_views.ServerView:
    inst = {"vm_state": "active", "task_state": None, "fault": None}
    return server_views.ServerView("http://x", inst, V2_1, admin, True)


def test_server_field_table_switches_at_since_and_until() -> None:
    names = mvs.field_names
    user, admin = _server(), _server(admin=True)
    assert "locked" not in names(server_views.SHOW_FIELDS, V2_8, user)
    assert "locked" in names(server_views.SHOW_FIELDS, V2_9, user)
    assert "scheduler_hints" not in names(server_views.SHOW_FIELDS, mvs.V2_99, user)
    assert names(server_views.SHOW_FIELDS, V2_100, user)[-1] == "scheduler_hints"
    # hostname: admins from 2.3, everyone from 2.90 — one key whichever row applies.
    hostname = "OS-EXT-SRV-ATTR:hostname"
    assert hostname not in names(server_views.SHOW_FIELDS, V2_89, user)
    assert names(server_views.SHOW_FIELDS, V2_89, admin).count(hostname) == 1
    assert names(server_views.SHOW_FIELDS, V2_90, user).count(hostname) == 1
    assert "server_groups" not in names(server_views.UPDATE_FIELDS, mvs.V2_70, user)
    assert "server_groups" in names(server_views.UPDATE_FIELDS, mvs.V2_71, user)


def test_other_field_tables() -> None:
    before = mvs.field_names(GROUP_FIELDS, V2_63)
    after = mvs.field_names(GROUP_FIELDS, V2_64)
    assert "policies" in before and "metadata" in before and "policy" not in before
    assert "policy" in after and "rules" in after and "policies" not in after
    assert mvs.field_names(DETAIL_FIELDS, mvs.V2_74).count("swap") == 1
    assert "extra_specs" in mvs.field_names(DETAIL_FIELDS, mvs.V2_61)
    assert "extra_specs" not in mvs.field_names(DETAIL_FIELDS, mvs.V2_60)


def test_schema_for_picks_the_range() -> None:
    table = [(V2_1, V2_64, "old"), (V2_64, None, "new")]
    assert mvs.schema_for(V2_63, table) == "old"
    assert mvs.schema_for(V2_64, table) == "new" and mvs.schema_for(V2_100, table) == "new"
    with pytest.raises(ValueError):
        mvs.schema_for(V2_1, [(V2_9, None, "x")])
