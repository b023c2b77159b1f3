"""The server list's `name` filter: Nova's regular expression, searched anywhere in the display
name, made safe against a user's catastrophic pattern.

Nova checks the parameter is a string that compiles as a regular expression (else 400 "... is
not a 'regex'") and runs `re.search` in the database. Here the pattern is also bounded (at most
`MAX_PATTERN` characters, as Nova's other name parameters) and is matched by the `regex` engine
(Python's `re` syntax) in a worker thread that releases the GIL, under one deadline for the
whole list: `^(a+)+$` over many names answers 400 after `MATCH_BUDGET` seconds and the event
loop serves every other request meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import regex

from mininova.errors import Invalid

MAX_PATTERN = 255
# Seconds for all the names of one list request: the engine's timeout counts CPU time, and
# the wall clock is checked between names.
MATCH_BUDGET = 2.0

_Row = TypeVar("_Row", bound=dict[str, Any])


def _refused(pattern: str, why: str) -> Invalid:
    shown = pattern if len(pattern) <= 40 else pattern[:40] + "..."
    return Invalid(f"Invalid input for query parameters name. Value: {shown}. {why}")


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """The compiled filter, or Invalid (400) for a too long or malformed pattern."""
    if len(pattern) > MAX_PATTERN:
        raise _refused(pattern, f"It is longer than {MAX_PATTERN} characters.")
    try:
        return regex.compile(pattern, regex.VERSION0)
    except (regex.error, ValueError, OverflowError, RecursionError):
        raise _refused(pattern, f"'{pattern}' is not a 'regex'") from None


def _matching(
    compiled: regex.Pattern[str], rows: Sequence[_Row], budget: float
) -> list[_Row] | None:
    deadline = time.monotonic() + budget
    kept = []
    for row in rows:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            found = compiled.search(row["name"] or "", concurrent=True, timeout=left)
        except TimeoutError:
            return None
        if found is not None:
            kept.append(row)
    return kept


async def filter_names(
    compiled: regex.Pattern[str], rows: Sequence[_Row], *, budget: float | None = None
) -> list[_Row]:
    """The rows whose `name` the compiled pattern matches (re.search semantics), off the
    event loop; Invalid (400) when it cannot finish within `budget` (MATCH_BUDGET) seconds."""
    budget = MATCH_BUDGET if budget is None else budget
    if not rows:
        return []
    kept = await asyncio.to_thread(_matching, compiled, rows, budget)
    if kept is None:
        raise _refused(compiled.pattern, f"The expression took longer than {budget:g}s to match.")
    return kept
