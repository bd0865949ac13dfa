"""The JSON codec of both services and both backends: values and pub/sub messages.

orjson with `OPT_NON_STR_KEYS`, so `{1: "a"}` comes back as `{"1": "a"}` exactly like a stdlib
`json` round trip. The services' hot paths call `orjson` directly (no helper frame) and use the
`*_error` builders here only on the failure path.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .exceptions import SerializationError

__all__ = ["OPTIONS", "decode", "decode_error", "encode", "encode_error", "round_trip"]

OPTIONS: Final = orjson.OPT_NON_STR_KEYS


def encode_error(key: str, exc: Exception, what: str = "value for key") -> SerializationError:
    """The error for a value that JSON cannot encode; names the key (or channel)."""
    return SerializationError(f"cannot JSON-encode the {what} {key!r}: {exc}", key=key)


def decode_error(key: str, exc: Exception) -> SerializationError:
    """The error for stored bytes that are not valid JSON; names the key."""
    return SerializationError(f"the value stored at {key!r} is not valid JSON: {exc}", key=key)


def encode(key: str, value: object) -> bytes:
    """JSON-encode `value`; `SerializationError` naming `key` when it cannot be encoded."""
    try:
        return orjson.dumps(value, option=OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise encode_error(key, exc) from exc


def decode(key: str, data: bytes) -> Any:
    """Decode stored JSON; `SerializationError` naming `key` for invalid bytes."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise decode_error(key, exc) from exc


def round_trip(key: str, value: object) -> Any:
    """What a later `get` returns for `value`: its JSON round trip (tuples become lists)."""
    return decode(key, encode(key, value))
