"""Argument checks: one function per kind of argument, each returning the value as it is used.

A function named as one of rust/src/bindings/args.rs raises what that one raises for the same
value, type and message (docs/ARCHITECTURE.md, "Arguments and backends", says who calls which).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._codec import check_finite
from ._constants import RATE_LIMIT_ALGORITHMS

__all__ = [
    "GCRA_MAX_SPAN",
    "MAX_KEY_BYTES",
    "MAX_PATTERN_LENGTH",
    "MAX_TTL_MS",
    "algorithm_arg",
    "callable_arg",
    "check_gcra_span",
    "choice_arg",
    "count_arg",
    "cursor_arg",
    "hash_value_arg",
    "int_arg",
    "key_arg",
    "ms_arg",
    "optional_seconds_arg",
    "pattern_arg",
    "positive_arg",
    "rate_limit_args",
    "rate_limit_many_args",
    "scan_count_arg",
    "seconds_arg",
    "str_arg",
    "str_args",
    "wait_seconds_arg",
]

#: Largest TTL the store accepts, in ms (rust/src/store/validate.rs MAX_TTL_MS).
MAX_TTL_MS: Final = 1 << 47
#: Longest key, in UTF-8 bytes (entry.rs MAX_KEY_LEN minus room for "ratelimit:").
MAX_KEY_BYTES: Final = (1 << 15) - 1 - 16
#: Longest glob pattern (characters): the cost of matching each key grows with it.
MAX_PATTERN_LENGTH: Final = 512
#: Largest `limit * window_ms` of `gcra` (gcra.rs MAX_SPAN): the script's doubles are exact below.
GCRA_MAX_SPAN: Final = (1 << 53) - 1
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_MAX_CURSOR = (1 << 64) - 1
_MAX_SCAN_COUNT = 1 << 32


def _type_error(value: object, name: str, expected: str) -> TypeError:
    return TypeError(f"{name} must be {expected}, not {type(value).__name__}")


def str_arg(value: object, name: str) -> str:
    """A `str` argument (a member, field, token or value)."""
    if not isinstance(value, str):
        raise _type_error(value, name, "a str")
    return value


def key_arg(key: object, name: str = "key") -> str:
    """A key (or lock name, channel, key template): a non-empty `str` of at most
    `MAX_KEY_BYTES` UTF-8 bytes."""
    key = str_arg(key, name)
    if not key:
        raise ValueError(f"{name} must be a non-empty str")
    # A code point is at most 4 UTF-8 bytes: only long keys need encoding to be measured.
    if len(key) > MAX_KEY_BYTES // 4:
        size = len(key.encode("utf-8", "surrogatepass"))
        if size > MAX_KEY_BYTES:
            raise ValueError(f"{name} is too long: {size} bytes, at most {MAX_KEY_BYTES} allowed")
    return key


def str_args(values: Sequence[object], what: str, command: str) -> Sequence[str]:
    """The `*args` of `sadd` / `srem` / `hdel`: at least one (none is a TypeError, as Python's
    for a missing argument), each a `str`."""
    if not values:
        raise TypeError(f"{command} needs at least one {what}")
    for value in values:
        str_arg(value, what)
    return values  # type: ignore[return-value]  # each element checked above


def int_arg(value: object, name: str) -> int:
    """An `int` (not a bool) in the signed 64-bit range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(value, name, "an int")
    if not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"{name} is out of the 64-bit range, got {value}")
    return value


def count_arg(value: object, name: str) -> int:
    """An `int` >= 0 (a cost)."""
    number = int_arg(value, name)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    return number


def positive_arg(value: object, name: str) -> int:
    """An `int` >= 1 (a limit)."""
    number = int_arg(value, name)
    if number < 1:
        raise ValueError(f"{name} must be >= 1, got {number}")
    return number


def seconds_arg(value: object, name: str) -> int:
    """A duration in seconds (`int | float`, not a bool), finite and > 0, as ms rounded up
    (at least 1, at most `MAX_TTL_MS`)."""
    if isinstance(value, float):
        seconds = value
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # as the store: the largest float of its sign
            seconds = sys.float_info.max if value > 0 else -sys.float_info.max
    else:
        raise _type_error(value, name, "an int or a float")
    if not (math.isfinite(seconds) and seconds > 0.0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value}")
    ms = seconds * 1000.0
    if ms > MAX_TTL_MS:
        raise ValueError(f"{name} is too large: {value} seconds")
    return max(math.ceil(ms), 1)


def optional_seconds_arg(value: object, name: str) -> int | None:
    """`seconds_arg`, with None (no expiry) passed through."""
    return None if value is None else seconds_arg(value, name)


def ms_arg(value: object, name: str = "ttl_ms") -> int:
    """A lock TTL: an `int` number of milliseconds in 1..MAX_TTL_MS."""
    ms = int_arg(value, name)
    if ms <= 0 or ms > MAX_TTL_MS:
        raise ValueError(f"{name} must be a positive number of milliseconds, got {ms}")
    return ms


def algorithm_arg(value: object) -> str:
    """One of the rate-limit algorithms, by name."""
    name = str_arg(value, "algorithm")
    if name not in RATE_LIMIT_ALGORITHMS:
        raise ValueError(
            f"unknown rate limit algorithm '{name}'; "
            f"expected one of: {', '.join(RATE_LIMIT_ALGORITHMS)}"
        )
    return name


def check_gcra_span(limit: int, window_ms: int) -> None:
    """`gcra` needs `limit * window_ms` <= `GCRA_MAX_SPAN`."""
    if limit * window_ms > GCRA_MAX_SPAN:
        raise ValueError(
            f"gcra needs limit * window_ms < 2**53, got limit={limit} and window_ms={window_ms}"
        )


def rate_limit_args(
    key: object, limit: object, window: object, cost: object, algorithm: object
) -> tuple[str, int, int, int, str]:
    """The arguments of one rate-limit hit.

    Returns:
        (key, limit, window in ms, cost, algorithm).
    """
    checked = (
        key_arg(key),
        positive_arg(limit, "limit"),
        seconds_arg(window, "window_seconds"),
        count_arg(cost, "cost"),
        algorithm_arg(algorithm),
    )
    if checked[4] == "gcra":
        check_gcra_span(checked[1], checked[2])
    return checked


def rate_limit_many_args(
    keys: object, limits: object, windows: object, cost: object, algorithm: object
) -> tuple[list[str], list[int], list[int], int]:
    """The arguments of `rate_limit_many`, in the store's order of checks.

    Returns:
        (keys, limits, windows in ms, cost).

    Raises:
        TypeError: `keys`/`limits`/`windows` not a list or tuple, or an element of a wrong type.
        ValueError: no key, lengths that differ, a key given twice, a limit < 1, a bad window
            or cost, an unknown algorithm, or for "gcra" a `limit * window_ms` of 2**53 or more.
    """
    for value, name in ((keys, "keys"), (limits, "limits"), (windows, "windows")):
        if not isinstance(value, (list, tuple)):
            raise _type_error(value, name, "a list")
    assert isinstance(keys, (list, tuple))
    assert isinstance(limits, (list, tuple))
    assert isinstance(windows, (list, tuple))
    if len(limits) != len(keys) or len(windows) != len(keys):
        raise ValueError(
            "keys, limits and windows must have the same length, "
            f"got {len(keys)}, {len(limits)} and {len(windows)}"
        )
    checked_keys, checked_limits, windows_ms = [], [], []
    for key, limit, window in zip(keys, limits, windows, strict=True):
        checked_keys.append(key_arg(key))
        checked_limits.append(positive_arg(limit, "limit"))
        windows_ms.append(seconds_arg(window, "window_seconds"))
    checked_cost = count_arg(cost, "cost")
    algorithm_arg(algorithm)
    if not checked_keys:
        raise ValueError("rate_limit_many needs at least one key")
    if len(set(checked_keys)) != len(checked_keys):
        twice = next(key for key in checked_keys if checked_keys.count(key) > 1)
        raise ValueError(f'rate_limit_many keys must be distinct, "{twice}" is given twice')
    if algorithm == "gcra":
        for limit, window_ms in zip(checked_limits, windows_ms, strict=True):
            check_gcra_span(limit, window_ms)
    return checked_keys, checked_limits, windows_ms, checked_cost


# --- arguments no backend sees -------------------------------------------------------------------


def hash_value_arg(key: str, value: object) -> str:
    """A hash field value as stored: `str` as is, `int`/`float` as `str(value)` (like redis-py).

    Raises:
        TypeError: another type.
        SerializationError: NaN or an infinity (no number reads it back), naming `key`.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, "value", "a str, an int or a float")
    check_finite(key, value, "hash value for key")
    return str(value)


def pattern_arg(pattern: object) -> str:
    """A glob of `del_pattern` / `scan`: a non-empty `str` of at most `MAX_PATTERN_LENGTH`
    characters (matching each key costs time in proportion to the pattern)."""
    pattern = str_arg(pattern, "pattern")
    if not pattern:
        raise ValueError("pattern must be a non-empty str")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"pattern is too long: {len(pattern)} characters, at most {MAX_PATTERN_LENGTH} allowed"
        )
    return pattern


def cursor_arg(cursor: object) -> int:
    """A SCAN cursor: an `int` (not a bool) in 0..2^64-1."""
    if isinstance(cursor, bool) or not isinstance(cursor, int):
        raise _type_error(cursor, "cursor", "an int")
    if not 0 <= cursor <= _MAX_CURSOR:
        raise ValueError(f"cursor must be in 0..2^64-1, got {cursor}")
    return cursor


def scan_count_arg(count: object) -> int:
    """A SCAN count hint: an `int` (not a bool) in 1..2^32."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise _type_error(count, "count", "an int")
    if not 1 <= count <= _MAX_SCAN_COUNT:
        raise ValueError(f"count must be in 1..2^32, got {count}")
    return count


def wait_seconds_arg(wait_seconds: object) -> float:
    """A lock wait: a finite number of seconds >= 0."""
    if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, (int, float)):
        raise _type_error(wait_seconds, "wait_seconds", "an int or a float")
    if not math.isfinite(wait_seconds) or wait_seconds < 0:
        raise ValueError(f"wait_seconds must be a finite number >= 0, got {wait_seconds!r}")
    return float(wait_seconds)


def choice_arg(name: str, value: object, choices: tuple[str, ...]) -> str:
    """A per-call option (`fallback=`, `on_lost=`): one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def callable_arg(value: object, name: str) -> Callable[..., Any]:
    """A function argument (`fn`, `callback`)."""
    if not callable(value):
        raise _type_error(value, name, "callable")
    return value
