"""Hypothesis settings shared by the protocol and console-handshake property tests.

CI runs a small derandomized dose; `MININOVA_FUZZ_SCALE=N` multiplies every example count
(bench/fuzz.sh runs the same tests with N = 10 as the longer run)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALE = max(1, int(os.environ.get("MININOVA_FUZZ_SCALE", "1")))

CI = settings(
    max_examples=60 * SCALE,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def examples(n: int) -> int:
    """`n` examples in CI, scaled by MININOVA_FUZZ_SCALE."""
    return n * SCALE


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """`n` (scaled) examples of `strategy`, drawn by hypothesis (derandomized) on a sync
    helper, for tests that then run them against a live controller."""
    out: list[Any] = []

    @settings(CI, max_examples=examples(n), database=None)
    @given(strategy)
    def draw(value: Any) -> None:
        out.append(value)

    draw()
    return out
