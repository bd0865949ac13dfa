"""Codec: orjson (cachebolt's choice) vs msgspec.json vs stdlib json on the cache's values.

Every leg encodes/decodes the same 100k distinct ~200-byte dicts (one size only: a codec's cost
does not depend on the number of keys of a cache). msgspec uses a pre-built
untyped Encoder/Decoder (a cache value has no schema, so a typed Struct decode does not apply).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest
from conftest import Measure, make_value

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _codecs() -> dict[str, Codec]:
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder()
    return {
        "orjson": (orjson.dumps, orjson.loads),
        "msgspec": (encoder.encode, decoder.decode),
        "json": (json.dumps, json.loads),
    }


LEGS = ["orjson", "msgspec", "json"]
N_VALUES = 100_000


@pytest.fixture(scope="module")
def values() -> list[dict[str, Any]]:
    """100k distinct values (this module's own: the codecs run at one size)."""
    return [make_value(i) for i in range(N_VALUES)]


@pytest.mark.benchmark(group="codec-encode")
@pytest.mark.parametrize("leg", LEGS)
def test_encode(leg: str, measure: Measure, values: list[dict[str, Any]]) -> None:
    dumps, _ = _codecs()[leg]

    def loop() -> None:
        for v in values:
            dumps(v)

    measure(loop, len(values), reference=leg == "orjson")


@pytest.mark.benchmark(group="codec-decode")
@pytest.mark.parametrize("leg", LEGS)
def test_decode(leg: str, measure: Measure, values: list[dict[str, Any]]) -> None:
    dumps, loads = _codecs()[leg]
    blobs = [dumps(v) for v in values]
    assert loads(blobs[0]) == values[0]

    def loop() -> None:
        for b in blobs:
            loads(b)

    measure(loop, len(blobs), reference=leg == "orjson")


@pytest.mark.benchmark(group="codec-roundtrip")
@pytest.mark.parametrize("leg", LEGS)
def test_roundtrip(leg: str, measure: Measure, values: list[dict[str, Any]]) -> None:
    dumps, loads = _codecs()[leg]

    def loop() -> None:
        for v in values:
            loads(dumps(v))

    measure(loop, len(values), reference=leg == "orjson")
