"""JSON helpers for the TEXT columns that hold documents, and the Store's public names."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from mininova.store.engine import Row, Store, Transaction, prepared

__all__ = ["Row", "Store", "Transaction", "dumps", "loads", "prepared"]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_LONG_NUMBER = re.compile(r"\d{19}")


def loads(text: str | None, default: Any = None) -> Any:
    """The document in `text` (orjson: a third of the standard library's time on the rows of a
    server list); the standard library where a number has 19 digits or more."""
    if text is None or text == "":
        return default
    if _LONG_NUMBER.search(text) is None:
        return orjson.loads(text)
    return json.loads(text)  # orjson would read an integer beyond 64 bits as a float
