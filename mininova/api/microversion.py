"""Compute microversion negotiation (OpenStack-API-Version / X-OpenStack-Nova-API-Version)."""

from __future__ import annotations

import re

from mininova.api import microversions as mvs
from mininova.api.errors import BadRequest, NotAcceptable

# The offered range is the registry's: the first and the last registered version.
MIN_VERSION = mvs.MIN
MAX_VERSION = mvs.MAX

_VERSION = re.compile(r"^(\d+)\.(\d+)$")


def fmt(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def parse_headers(headers: dict[str, str] | object) -> mvs.Microversion:
    """The registered microversion a request asks for; 2.1 when it names none."""
    raw: str | None = None
    modern = headers.get("OpenStack-API-Version")  # type: ignore[attr-defined]
    if modern:
        for part in modern.split(","):
            words = part.strip().split()
            if len(words) == 2 and words[0].lower() == "compute":
                raw = words[1]
    if raw is None:
        raw = headers.get("X-OpenStack-Nova-API-Version")  # type: ignore[attr-defined]
    if raw is None or raw.strip() == "":
        return MIN_VERSION
    raw = raw.strip()
    if raw.lower() == "latest":
        return MAX_VERSION
    match = _VERSION.match(raw)
    if not match:
        raise BadRequest(f"Invalid API version request string {raw!r}.")
    version = (int(match.group(1)), int(match.group(2)))
    if MIN_VERSION <= version <= MAX_VERSION:
        try:
            return mvs.lookup(version)
        except KeyError:  # a gap in the registry is not offered either
            pass
    raise NotAcceptable(
        f"Version {raw} is not supported by the API. Minimum is {fmt(MIN_VERSION)} "
        f"and maximum is {fmt(MAX_VERSION)}."
    )
