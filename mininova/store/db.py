"""JSON helpers for the TEXT columns that hold documents, and the Store's public names."""

from __future__ import annotations

import json
from typing import Any

from mininova import exact_json
from mininova.store.engine import Row, Store, Transaction, prepared

__all__ = ["Row", "Store", "Transaction", "dumps", "loads", "prepared"]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None, default: Any = None) -> Any:
    """The document in `text` (`exact_json`: orjson where it reads what the standard library
    would; a third of the standard library's time on the rows of a server list)."""
    if text is None or text == "":
        return default
    return exact_json.loads(text)
