"""Schemathesis against a running mininova: every operation of /openapi.json, several tokens.

Used by `tests/hardening/test_fuzz_api.py` (a few examples per operation, in-process) and by
`bench/fuzz.sh` (a longer run against `mininova serve --local-agent=fake`):

    python -m bench.fuzz --url http://127.0.0.1:8780 --admin admin:PASSWORD:admin --examples 200

(it makes the member project and user itself).

Each generated case is sent once per token (the requests are synchronous: call `fuzz` from a
thread when the server runs on the caller's event loop). Skipped: the `internal` routes
(agents, consoles, dashboard: websockets and capabilities, not OpenStack APIs), HEAD (the GET
handler again), and the destructive operations of `DESTRUCTIVE` when a path parameter is a
real id (`known_ids`): they would delete the fuzzing user's own project, user or roles.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

# Glance's JSON-patch media type is JSON on the wire.
schemathesis.serializer.alias("application/openstack-images-v2.1-json-patch", "application/json")

# Operations that, given the fuzzing user's own ids, would end the run (its project, its user,
# its role grants, its token); fuzzed with generated ids only.
DESTRUCTIVE = {
    ("DELETE", "/identity/v3/projects/{project_id}"),
    ("PATCH", "/identity/v3/projects/{project_id}"),
    ("DELETE", "/identity/v3/users/{user_id}"),
    ("PATCH", "/identity/v3/users/{user_id}"),
    ("DELETE", "/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id}"),
    ("DELETE", "/identity/v3/auth/tokens"),
    ("PUT", "/compute/v2.1/os-quota-sets/{project_id}"),
    ("DELETE", "/compute/v2.1/os-quota-sets/{project_id}"),
}


@dataclass
class FuzzReport:
    """What a run sent and what came back."""

    operations: list[str] = field(default_factory=list)
    requests: int = 0
    by_class: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # "<status> <curl>" of each 5xx
    transport_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    call_seconds: float = 0.0  # of which waiting for responses

    def summary(self) -> dict[str, Any]:
        return {
            "operations": len(self.operations),
            "requests": self.requests,
            "responses": dict(sorted(self.by_class.items())),
            "5xx": len(self.server_errors),
            "transport_errors": len(self.transport_errors),
            "seconds": round(self.seconds, 1),
            "call_seconds": round(self.call_seconds, 1),
        }


def selected(schema: Any) -> list[Any]:
    """The operations to fuzz: all but `internal` ones and HEAD."""
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "HEAD" or "internal" in (operation.tags or []):
            continue
        operations.append(operation)
    return operations


def fuzz(
    document: dict[str, Any],
    base_url: str,
    tokens: Iterable[str],
    *,
    examples: int = 3,
    known_ids: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> FuzzReport:
    """Send `examples` positive and `examples` negative cases of every selected operation with
    each token (and, where every path parameter is named in `known_ids`, as many again with
    those real ids); derandomized, so a run is reproducible."""
    tokens = list(tokens)
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    started = time.monotonic()
    session = requests.Session()
    for operation in selected(schema):
        method, path = operation.method.upper(), operation.path
        report.operations.append(f"{method} {path}")
        strategies = [
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        names = set(re.findall(r"\{([^}]+)\}", path))
        real = {n: v for n, v in (known_ids or {}).items() if n in names}
        if real and len(real) == len(names) and (method, path) not in DESTRUCTIVE:
            strategies += [  # past the handler's lookup, into its body and state checks
                operation.as_strategy(generation_mode=mode, path_parameters=real)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            ]
        _run(
            st.one_of(strategies),
            examples * len(strategies),
            base_url,
            tokens,
            session,
            report,
            timeout,
        )
    report.seconds = time.monotonic() - started
    return report


def _run(
    strategy: Any,
    examples: int,
    base_url: str,
    tokens: list[str],
    session: requests.Session,
    report: FuzzReport,
    timeout: float,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],  # no shrinking: a 5xx is reported with its curl as sent
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        for token in tokens:
            sent = time.monotonic()
            try:
                response = case.call(
                    base_url=base_url,
                    session=session,
                    headers={"X-Auth-Token": token},
                    timeout=timeout,
                )
            except (requests.RequestException, ValueError) as exc:
                report.transport_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            finally:
                report.call_seconds += time.monotonic() - sent
            report.requests += 1
            report.by_class[f"{response.status_code // 100}xx"] += 1
            if response.status_code >= 500:
                curl = case.as_curl_command(headers={"X-Auth-Token": "$TOKEN"}, base_url=base_url)
                report.server_errors.append(f"{response.status_code} {curl}")

    check()


def _login(url: str, user: str, password: str, project: str) -> str:
    scope = {"project": {"name": project, "domain": {"name": "Default"}}}
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"name": "Default"}, "password": password}
            },
        },
        "scope": scope,
    }
    response = requests.post(url + "/identity/v3/auth/tokens", json={"auth": auth}, timeout=30)
    response.raise_for_status()
    return response.headers["X-Subject-Token"]


def _member(url: str, admin_token: str) -> tuple[str, dict[str, str]]:
    """A fresh project whose user has only the member role: its token and its ids."""
    headers = {"X-Auth-Token": admin_token}
    base = url + "/identity/v3"
    project = requests.post(
        base + "/projects", json={"project": {"name": "fuzz"}}, headers=headers, timeout=30
    ).json()["project"]
    password = "fuzz-" + str(time.time_ns())
    user = requests.post(
        base + "/users",
        json={
            "user": {"name": "fuzzer", "password": password, "default_project_id": project["id"]}
        },
        headers=headers,
        timeout=30,
    ).json()["user"]
    role = requests.get(base + "/roles?name=member", headers=headers, timeout=30).json()["roles"][0]
    grant = f"{base}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"
    requests.put(grant, headers=headers, timeout=30).raise_for_status()
    token = _login(url, "fuzzer", password, "fuzz")
    return token, {"project_id": project["id"], "user_id": user["id"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--admin", required=True, help="user:password:project of an admin")
    args = parser.parse_args(argv)
    admin = _login(args.url, *args.admin.split(":", 2))
    member, known = _member(args.url, admin)
    known["flavor_id"] = "1"
    with urllib.request.urlopen(args.url + "/openapi.json", timeout=30) as response:
        document = json.load(response)
    report = fuzz(document, args.url, [admin, member], examples=args.examples, known_ids=known)
    summary = report.summary()
    for key, value in summary.items():
        print(f"{key}: {value}")
    for line in report.server_errors[:20]:
        print("5xx:", line)
    for line in report.transport_errors[:5]:
        print("transport:", line)
    return 1 if report.server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
