"""Origin checks of the browser websocket."""

from __future__ import annotations

import pytest

from mininova.consoleproxy.origin import check_origin

PUBLIC = "http://10.0.0.5:8780"


@pytest.mark.parametrize(
    "origin", [None, "", "http://10.0.0.5:8780", "HTTP://10.0.0.5:8780", "http://10.0.0.5:8780/"]
)
def test_allowed(origin: str | None) -> None:
    assert check_origin(origin, PUBLIC)[0]


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://10.0.0.5:8780",
        "http://10.0.0.5:8781",
        "http://10.0.0.5",
        "http://10.0.0.50:8780",
        "null",
        "not a url",
        "file://x",
    ],
)
def test_refused(origin: str) -> None:
    allowed, reason = check_origin(origin, PUBLIC)
    assert not allowed and reason


def test_default_ports_and_extra() -> None:
    assert check_origin("https://cloud.example", "https://cloud.example:443")[0]
    assert check_origin("http://cloud.example:80", "http://cloud.example")[0]
    assert not check_origin("http://other:1", PUBLIC)[0]
    assert check_origin("http://other:1", PUBLIC, ["http://other:1"])[0]
