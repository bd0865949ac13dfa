"""The JSON codec of both services and both backends: values and pub/sub messages.

orjson with `OPT_NON_STR_KEYS`, imported on first use; NaN and infinities are refused. The
services' hot paths call orjson directly. docs/ARCHITECTURE.md ("The JSON codec") says why.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable
from typing import Any, Final

from ._core import first_non_finite
from .exceptions import SerializationError

__all__ = [
    "OPTIONS",
    "SORT_KEYS",
    "check_finite",
    "decode",
    "decode_error",
    "encode",
    "encode_error",
    "first_use",
    "round_trip",
]

# orjson.OPT_NON_STR_KEYS and orjson.OPT_SORT_KEYS, which are part of orjson's documented API
# (tests/test_codec.py checks them against the installed orjson).
OPTIONS: Final = 4
SORT_KEYS: Final = 32


def first_use(namespace: dict[str, Any], name: str, attribute: str) -> Callable[..., Any]:
    """A stand-in for `orjson.<attribute>` that imports orjson on its first call.

    Args:
        namespace: the `globals()` of the calling module; the first call stores the real
            function there under `name`.
        name: the global name the module calls.
        attribute: `dumps` or `loads`.
    """

    def load_and_call(*args: Any, **kwargs: Any) -> Any:
        import orjson

        function = getattr(orjson, attribute)
        namespace[name] = function
        return function(*args, **kwargs)

    return load_and_call


_dumps = first_use(globals(), "_dumps", "dumps")
_loads = first_use(globals(), "_loads", "loads")


def encode_error(key: str, exc: Exception, what: str = "value for key") -> SerializationError:
    """The error for a value that JSON cannot encode; names the key (or channel)."""
    return SerializationError(f"cannot JSON-encode the {what} {key!r}: {exc}", key=key)


def _children(value: object) -> Iterable[object] | None:
    """What orjson encodes inside an object that is not a dict, list, tuple or scalar."""
    if isinstance(value, enum.Enum):
        return (value.value,)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name) for f in dataclasses.fields(value)]
    return None


def check_finite(key: str, value: object, what: str = "value for key") -> None:
    """Refuse a value holding NaN or an infinity (orjson would write `null` for it).

    Call it only when the encoded bytes contain `b"null"`: no other output can hide one.

    Raises:
        SerializationError: naming `key` and the float found.
    """
    found = first_non_finite(value, _children)
    if found is not None:
        raise encode_error(
            key, ValueError(f"{found!r} is not a JSON number (NaN, inf and -inf are refused)"), what
        )


def decode_error(key: str, exc: Exception) -> SerializationError:
    """The error for stored bytes that are not valid JSON; names the key."""
    return SerializationError(f"the value stored at {key!r} is not valid JSON: {exc}", key=key)


def encode(key: str, value: object, what: str = "value for key") -> bytes:
    """JSON-encode `value`; `SerializationError` naming `key` (a `what`) when it cannot be
    encoded or holds NaN or an infinity."""
    try:
        data: bytes = _dumps(value, option=OPTIONS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise encode_error(key, exc, what) from exc
    if 108 in data and data.find(b"null") != -1:  # see check_finite
        check_finite(key, value, what)
    return data


def decode(key: str, data: bytes) -> Any:
    """Decode stored JSON; `SerializationError` naming `key` for invalid bytes."""
    try:
        return _loads(data)
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise decode_error(key, exc) from exc


def round_trip(key: str, value: object) -> Any:
    """What a later `get` returns for `value`: its JSON round trip (tuples become lists)."""
    return decode(key, encode(key, value))
