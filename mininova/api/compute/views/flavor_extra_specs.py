"""Flavor extra spec views."""

from __future__ import annotations


def extra_specs(specs: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"extra_specs": dict(specs)}


def extra_spec(key: str, value: str) -> dict[str, str]:
    return {key: value}
