"""The JSON encoding of API bodies and the decoding of stored documents (orjson, with the
standard library where orjson would change a value)."""

from __future__ import annotations

import json

from mininova.api.responses import encode_json, json_response
from mininova.store.db import dumps, loads


def test_bodies_decode_to_what_was_given() -> None:
    value = {"name": "vm-ü ☃", "n": 3, "f": 2.5, "none": None, "list": [1, "a", {"b": True}]}
    assert json.loads(encode_json(value)) == value


def test_integers_beyond_64_bits_and_non_string_keys() -> None:
    big = 2**70
    assert json.loads(encode_json({"big": big})) == {"big": big}
    assert json.loads(encode_json({1: "one"})) == {"1": "one"}


def test_json_response_headers_match_aiohttp() -> None:
    response = json_response({"a": 1}, status=202, headers={"X-Test": "1"})
    assert response.status == 202
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["X-Test"] == "1"
    assert json.loads(response.body) == {"a": 1}


def test_stored_documents_round_trip_exactly() -> None:
    for value in ({"hint": 2**70}, {"x": [1, 2.5, None]}, {"s": "é"}, [], {}):
        assert loads(dumps(value)) == value
        assert type(loads(dumps(value))) is type(value)
    assert loads(dumps({"hint": 2**70}))["hint"] == 2**70
    assert loads(None, {}) == {} and loads("", []) == []
