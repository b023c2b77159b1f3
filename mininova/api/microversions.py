"""The compute microversion registry: every version mininova offers, declared once.

Each `V2_xx` constant is the only way code names a microversion: gates (`at_least`,
`mininova.api.context.mv_at_least`), view field tables (`Field(since=…, until=…)`) and
request-schema choices (`schema_for`) accept a registered `Microversion` and nothing else, so a
typo or a version that was never declared fails when the module defining the gate is imported
(or, for a call-time gate, at its first call — and `tests/api/test_microversions.py` scans the
source so that never happens silently).

Adding a microversion is one `register(...)` line here (and raising `MAX` follows by itself),
plus the `Field` rows or gates that use it; then regenerate the reference with
`python -m mininova.api.microversions --markdown > docs/microversions.md`.

The descriptions summarise, in our own words, what each version changed in Nova. mininova
offers 2.1 up to 2.100: the versions after 2.100 touch nothing mininova implements, so they are
not registered and a request for them is refused with 406.

Pure module: no aiohttp, no I/O (the `--markdown` generator only reads source files).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")


class Microversion(tuple):
    """A registered compute microversion; compares (and hashes) like the tuple `(2, minor)`."""

    description: str

    def __new__(cls, major: int, minor: int, description: str, _token: object = None):
        if _token is not _REGISTERING:
            raise TypeError("microversions are created by register() only")
        self = super().__new__(cls, (major, minor))
        self.description = description
        return self

    @property
    def text(self) -> str:
        return f"{self[0]}.{self[1]}"

    @property
    def name(self) -> str:
        return f"V{self[0]}_{self[1]}"

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.text

    def __reduce__(self):  # a copy is the registered object itself
        return (lookup, (self.text,))


_REGISTERING = object()
_REGISTRY: dict[tuple[int, int], Microversion] = {}


def _split(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"not a microversion: {text!r}")
    return int(major), int(minor)


def register(text: str, description: str) -> Microversion:
    """Declare the next microversion (in order, exactly once, with a one-line description)."""
    key = _split(text)
    if key in _REGISTRY:
        raise ValueError(f"microversion {text} registered twice")
    if _REGISTRY and key <= max(_REGISTRY):
        raise ValueError(f"microversion {text} registered out of order")
    if not description.strip() or "\n" in description:
        raise ValueError(f"microversion {text} needs a one-line description")
    version = Microversion(key[0], key[1], description.strip(), _REGISTERING)
    _REGISTRY[key] = version
    return version


def lookup(version: str | tuple[int, int]) -> Microversion:
    """The registered microversion for "2.53" or (2, 53); KeyError when it is not registered."""
    key = _split(version) if isinstance(version, str) else (int(version[0]), int(version[1]))
    try:
        return _REGISTRY[key]
    except KeyError:
        raise KeyError(f"microversion {key[0]}.{key[1]} is not registered") from None


def registered() -> list[Microversion]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def require(version: object) -> Microversion:
    """`version` itself when it is a registered microversion; TypeError otherwise."""
    if not isinstance(version, Microversion) or _REGISTRY.get(tuple(version)) is not version:
        raise TypeError(f"a gate needs a registered microversion constant (V2_xx), not {version!r}")
    return version


def at_least(requested: tuple[int, int], since: Microversion) -> bool:
    """Whether the requested microversion is `since` or later."""
    return tuple(requested) >= require(since)


def in_range(
    requested: tuple[int, int], since: Microversion, until: Microversion | None = None
) -> bool:
    """since <= requested < until (`until` None: no upper bound)."""
    if tuple(requested) < require(since):
        return False
    return until is None or tuple(requested) < require(until)


# ---------------------------------------------------------------------------- the registry

# fmt: off
V2_1 = register("2.1", "the v2.1 API: the v2.0 API with strict input validation; the default when a request names no version")  # noqa: E501
V2_2 = register("2.2", "keypairs have a type (ssh or x509); keypair create answers 201 and delete 204")
V2_3 = register("2.3", "more extended server attributes for admins: reservation_id, launch_index, kernel_id, ramdisk_id, hostname, root_device_name, user_data")  # noqa: E501
V2_4 = register("2.4", "os-fixed-ips shows whether an address is reserved")
V2_5 = register("2.5", "non-admins may filter the server list by ip6")
V2_6 = register("2.6", "one remote-consoles API (POST /servers/{id}/remote-consoles) replaces the per-type console actions")  # noqa: E501
V2_7 = register("2.7", "adding tenant access to a public flavor is a 409 conflict")
V2_8 = register("2.8", "the webmks (MKS) remote console protocol")
V2_9 = register("2.9", "servers show whether they are locked")
V2_10 = register("2.10", "admins may manage other users' keypairs with a user_id parameter")
V2_11 = register("2.11", "services can be forced down (forced_down field and force-down action)")
V2_12 = register("2.12", "virtual interfaces show their network id")
V2_13 = register("2.13", "server groups show their project_id and user_id")
V2_14 = register("2.14", "evacuate loses onSharedStorage (detected instead) and returns adminPass only when set")  # noqa: E501
V2_15 = register("2.15", "server groups accept the soft-affinity and soft-anti-affinity policies")
V2_16 = register("2.16", "admins see host_status in server details")
V2_17 = register("2.17", "the trigger_crash_dump server action")
V2_18 = register("2.18", "the project id in compute URLs becomes optional")
V2_19 = register("2.19", "servers have a user-settable description")
V2_20 = register("2.20", "volumes can be attached to and detached from shelved servers")
V2_21 = register("2.21", "instance actions of deleted servers can be listed")
V2_22 = register("2.22", "a running live migration can be forced to complete")
V2_23 = register("2.23", "migrations show their type and links; GET /servers/{id}/migrations")
V2_24 = register("2.24", "a running live migration can be aborted")
V2_25 = register("2.25", "live migration takes block_migration=auto and drops disk_over_commit")
V2_26 = register("2.26", "server tags")
V2_27 = register("2.27", "the OpenStack-API-Version header is accepted besides X-OpenStack-Nova-API-Version")  # noqa: E501
V2_28 = register("2.28", "hypervisor cpu_info is a JSON object instead of a string")
V2_29 = register("2.29", "evacuate takes a force flag")
V2_30 = register("2.30", "live migration takes a force flag")
V2_31 = register("2.31", "console auth tokens work for every console type")
V2_32 = register("2.32", "device tags on networks and block devices at server create")
V2_33 = register("2.33", "hypervisor lists are paged (limit, marker)")
V2_34 = register("2.34", "live migration pre-checks run asynchronously")
V2_35 = register("2.35", "keypair lists are paged (limit, marker)")
V2_36 = register("2.36", "the network, image and other proxy APIs answer 404; network quotas leave quotas and limits")  # noqa: E501
V2_37 = register("2.37", "server create requires networks and accepts auto or none")
V2_38 = register("2.38", "an unknown status filter on the server list is a 400")
V2_39 = register("2.39", "the image metadata proxy answers 404; maxImageMeta leaves the limits")
V2_40 = register("2.40", "simple tenant usage is paged (limit, marker)")
V2_41 = register("2.41", "aggregates show their uuid")
V2_42 = register("2.42", "device tags at server create are accepted again")
V2_43 = register("2.43", "the os-hosts API is deprecated (404)")
V2_44 = register("2.44", "the fixed/floating IP server actions and os-virtual-interfaces are deprecated (404)")  # noqa: E501
V2_45 = register("2.45", "createImage and createBackup return the image id in the response body")
V2_46 = register("2.46", "the request id is also returned as X-OpenStack-Request-ID")
V2_47 = register("2.47", "servers embed their flavor's details instead of a flavor link")
V2_48 = register("2.48", "server diagnostics have a standard format")
V2_49 = register("2.49", "device tags on volume and interface attach")
V2_50 = register("2.50", "quota classes show server group quotas and drop network quotas")
V2_51 = register("2.51", "non-admins see instance action events; the volume-extended external event")
V2_52 = register("2.52", "tags at server create")
V2_53 = register("2.53", "services and hypervisors are identified by UUID; PUT /os-services/{id}; hypervisor search and servers move to query parameters")  # noqa: E501
V2_54 = register("2.54", "rebuild can change the key pair")
V2_55 = register("2.55", "flavors have a description and can be updated (PUT)")
V2_56 = register("2.56", "cold migration can name a target host")
V2_57 = register("2.57", "personality files are deprecated (user_data on rebuild instead); their quotas and limits go")  # noqa: E501
V2_58 = register("2.58", "instance actions show updated_at and are paged and filterable by changes-since")
V2_59 = register("2.59", "migrations are paged, filterable by changes-since and show their uuid")
V2_60 = register("2.60", "multi-attach volumes")
V2_61 = register("2.61", "flavors embed their extra_specs")
V2_62 = register("2.62", "instance action events show host and hostId")
V2_63 = register("2.63", "trusted image certificates at server create and rebuild, shown on servers")
V2_64 = register("2.64", "server groups have one policy plus rules (max_server_per_host) instead of policies and metadata")  # noqa: E501
V2_65 = register("2.65", "live migrations still queued or preparing can be aborted")
V2_66 = register("2.66", "the changes-before filter for servers, instance actions and migrations")
V2_67 = register("2.67", "block device mappings take a volume_type")
V2_68 = register("2.68", "the force flag of evacuate and live migration is removed")
V2_69 = register("2.69", "minimal server records for servers in unreachable cells")
V2_70 = register("2.70", "volume attachments and interfaces show their device tags")
V2_71 = register("2.71", "servers show their server_groups (show, update, rebuild)")
V2_72 = register("2.72", "server create accepts ports with resource requests")
V2_73 = register("2.73", "lock takes a locked_reason, shown on servers; locked filter on the server list")  # noqa: E501
V2_74 = register("2.74", "server create can request a host and hypervisor_hostname")
V2_75 = register("2.75", "API clean-up: update and rebuild answer the full server view, flavor swap 0 instead of \"\", hypervisor servers always listed, strict query validation")  # noqa: E501
V2_76 = register("2.76", "the power-update external event")
V2_77 = register("2.77", "unshelve can name an availability zone")
V2_78 = register("2.78", "GET /servers/{id}/topology (NUMA topology)")
V2_79 = register("2.79", "volume attach takes and shows delete_on_termination")
V2_80 = register("2.80", "migrations show and filter by user_id and project_id")
V2_81 = register("2.81", "images can be cached on the hosts of an aggregate")
V2_82 = register("2.82", "the accelerator-request-bound external event")
V2_83 = register("2.83", "non-admins get more server list filters")
V2_84 = register("2.84", "instance action events show details of a failure")
V2_85 = register("2.85", "a volume attachment's delete_on_termination can be updated")
V2_86 = register("2.86", "flavor extra specs are validated")
V2_87 = register("2.87", "stable device rescue, also for volume-backed servers")
V2_88 = register("2.88", "hypervisors drop usage and capacity fields; uptime moves into show; statistics and uptime calls answer 404")  # noqa: E501
V2_89 = register("2.89", "volume attachments show attachment_id and bdm_uuid instead of id")
V2_90 = register("2.90", "the hostname can be set at create, update and rebuild and is shown to non-admins")  # noqa: E501
V2_91 = register("2.91", "unshelve can name a host and clear the availability zone")
V2_92 = register("2.92", "keypair create requires public_key (no generation); names may contain @ and .")  # noqa: E501
V2_93 = register("2.93", "volume-backed servers can be rebuilt")
V2_94 = register("2.94", "the hostname may be a fully qualified domain name")
V2_95 = register("2.95", "evacuated servers stay stopped")
V2_96 = register("2.96", "servers show pinned_availability_zone")
V2_97 = register("2.97", "shares (Manila file systems) can be attached to servers")
V2_98 = register("2.98", "the server's image embeds the image properties")
V2_99 = register("2.99", "the spice-direct console type")
V2_100 = register("2.100", "servers show their scheduler_hints")
# fmt: on

MIN: Microversion = registered()[0]
MAX: Microversion = registered()[-1]


# ------------------------------------------------------------ version-ranged views and schemas


@dataclass(frozen=True)
class Field(Generic[C]):
    """One key of a view: present for since <= version < until (and when `when` holds).

    `render(ctx)` gives the value from whatever context object the view's table uses.
    Several rows may share a name with disjoint ranges (a key whose meaning changes).
    """

    name: str
    render: Callable[[C], Any]
    since: Microversion = V2_1
    until: Microversion | None = None
    when: Callable[[C], bool] | None = None

    def __post_init__(self) -> None:
        require(self.since)
        if self.until is not None and require(self.until) <= self.since:
            raise ValueError(f"field {self.name}: until {self.until} is not after {self.since}")

    def applies(self, version: tuple[int, int], ctx: C) -> bool:
        return in_range(version, self.since, self.until) and (self.when is None or self.when(ctx))


_Plan = list[tuple[str, Callable[[Any], Any], Callable[[Any], bool] | None]]
_active: dict[tuple[int, tuple[int, int]], tuple[Any, _Plan]] = {}


def _plan(fields: Iterable[Field[C]], version: tuple[int, int]) -> _Plan:
    return [(f.name, f.render, f.when) for f in fields if in_range(version, f.since, f.until)]


def _fields_at(fields: Iterable[Field[C]], version: tuple[int, int]) -> _Plan:
    """(name, render, when) of the rows of a (constant) table whose version range holds
    `version`, worked out once per table and version."""
    if not isinstance(fields, tuple | list):
        return _plan(fields, version)
    key = (id(fields), tuple(version))
    found = _active.get(key)
    if found is None or found[0] is not fields:
        found = _active[key] = (fields, _plan(fields, version))
    return found[1]


def render_fields(
    fields: Iterable[Field[C]], version: tuple[int, int], ctx: C, into: dict | None = None
) -> dict[str, Any]:
    """The view of `ctx` at `version`: each applicable field in table order."""
    view: dict[str, Any] = {} if into is None else into
    for name, render, when in _fields_at(fields, version):
        if when is None or when(ctx):
            view[name] = render(ctx)
    return view


def field_names(fields: Iterable[Field[Any]], version: tuple[int, int], ctx: Any = None) -> list:
    """The keys a table yields at `version` (tests and docs; `when` is evaluated on `ctx`)."""
    return [f.name for f in fields if f.applies(version, ctx)]


def schema_for(
    version: tuple[int, int], choices: Sequence[tuple[Microversion, Microversion | None, T]]
) -> T:
    """The schema whose [since, until) range holds `version`; ValueError if none does."""
    for since, until, schema in choices:
        if in_range(version, since, until):
            return schema
    raise ValueError(f"no schema for microversion {version[0]}.{version[1]}")


# ------------------------------------------------------------------ docs/microversions.md

_ROOT = Path(__file__).resolve().parents[2]
_GATES = {"mv_at_least", "at_least", "in_range"}


def _version_names(node: ast.AST) -> list[str]:
    return [
        n.id if isinstance(n, ast.Name) else n.attr
        for n in ast.walk(node)
        if (isinstance(n, ast.Name) and n.id in _NAMES)
        or (isinstance(n, ast.Attribute) and n.attr in _NAMES)
    ]


_NAMES = {v.name for v in _REGISTRY.values()}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


class _Uses(ast.NodeVisitor):
    """Where each constant is used: `function (gate)`, `field name`, `schema` per module."""

    def __init__(self, module: str, uses: dict[str, dict[str, set[str]]]) -> None:
        self.module, self.uses, self.scope = module, uses, ["module"]

    def _add(self, name: str, what: str) -> None:
        self.uses.setdefault(name, {}).setdefault(self.module, set()).add(what)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        named = len(self.scope) == 1 and len(targets) == 1 and isinstance(targets[0], ast.Name)
        if named:
            self.scope.append(targets[0].id)  # type: ignore[union-attr]
        self.generic_visit(node)
        if named:
            self.scope.pop()

    visit_AnnAssign = visit_Assign  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name == "Field" and node.args and isinstance(node.args[0], ast.Constant):
            for kw in node.keywords:
                if kw.arg in ("since", "until"):
                    suffix = " (until)" if kw.arg == "until" else ""
                    for v in _version_names(kw.value):
                        self._add(v, f"field `{node.args[0].value}`{suffix}")
            return
        if name == "schema_for":
            for v in _version_names(node):
                self._add(v, f"{self.scope[-1]} (schema)")
            return
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _NAMES:
            self._add(node.id, f"{self.scope[-1]}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _NAMES:
            self._add(node.attr, f"{self.scope[-1]}")
        else:
            self.generic_visit(node)


def uses(root: Path = _ROOT) -> dict[str, list[str]]:
    """For each constant name, where mininova/ (but this module) uses it, one line a module."""
    found: dict[str, dict[str, set[str]]] = {}
    package = root / "mininova"
    for path in sorted(package.rglob("*.py")):
        if path.name == "microversions.py" and path.parent.name == "api":
            continue
        module = path.relative_to(package).as_posix()
        _Uses(module, found).visit(ast.parse(path.read_text(), str(path)))
    return {
        name: [f"`{mod}`: {', '.join(sorted(what))}" for mod, what in sorted(by_module.items())]
        for name, by_module in found.items()
    }


def markdown(root: Path = _ROOT) -> str:
    """The text of docs/microversions.md."""
    used = uses(root)
    lines = [
        "# Compute microversions",
        "",
        "Generated from `mininova/api/microversions.py` by",
        "`python -m mininova.api.microversions --markdown > docs/microversions.md`; do not edit.",
        "`tests/api/test_microversions.py` fails when this file is stale.",
        "",
        f"mininova offers compute microversions {MIN} to {MAX} (`latest` is {MAX}). The",
        f"versions after {MAX} change nothing mininova implements, so they are not offered.",
        "A version marked *not gated* is accepted and behaves like the one before it here,",
        "because mininova does not implement what it changed.",
        "",
        "| version | what it changed in Nova | where mininova uses it |",
        "|---|---|---|",
    ]
    for v in registered():
        where = "<br>".join(used.get(v.name, [])) or "*not gated*"
        text = v.description.replace("|", "\\|")
        lines.append(f"| {v.text} | {text} | {where} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--markdown"]:
        sys.stdout.write(markdown())
        return 0
    if args == ["--check"]:
        path = _ROOT / "docs" / "microversions.md"
        current = path.read_text() if path.exists() else ""
        if current != markdown():
            sys.stderr.write(
                "docs/microversions.md is stale: run "
                "`python -m mininova.api.microversions --markdown > docs/microversions.md`\n"
            )
            return 1
        return 0
    sys.stderr.write("usage: python -m mininova.api.microversions --markdown | --check\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
