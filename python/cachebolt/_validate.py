"""Argument checks shared by both services and every backend.

Each check raises `TypeError` for a wrong type and `ValueError` for a wrong value, before anything
is changed. The sync service's hot path leaves key and TTL checks to the Rust store, which raises
the same types; these helpers serve every other path and the Redis backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._codec import check_finite
from ._constants import RATE_LIMIT_ALGORITHMS

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_TTL_MS",
    "bool_error",
    "check_algorithm",
    "check_choice",
    "check_cost",
    "check_gcra_span",
    "check_key",
    "check_limit",
    "check_members",
    "check_optional_ttl",
    "check_scan_count",
    "check_scan_cursor",
    "check_ttl",
    "check_ttl_ms",
    "check_wait_seconds",
    "count_arg",
    "hash_value_text",
    "int64_arg",
    "ms_arg",
    "rate_limit_many_args",
    "seconds_to_ms",
    "store_key",
    "str_arg",
    "str_args",
]


def bool_error(name: str) -> TypeError:
    """The error for a bool passed where a number is expected (`True` is not a TTL of 1)."""
    return TypeError(f"{name} must be a number of seconds or milliseconds, not a bool")


def check_key(key: object, name: str = "key") -> None:
    """A key (or channel, field, lock name) is a non-empty `str`."""
    if not isinstance(key, str):
        raise TypeError(f"{name} must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError(f"{name} must be a non-empty str")


def check_ttl(ttl: object, name: str = "ttl") -> None:
    """A required expiry in seconds: a finite `int | float` > 0 (not a bool)."""
    if isinstance(ttl, bool):
        raise bool_error(name)
    if not isinstance(ttl, (int, float)):
        raise TypeError(f"{name} must be int | float seconds, not {type(ttl).__name__}")
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {ttl!r}")


def check_optional_ttl(ttl: object, name: str = "ttl") -> None:
    """Like `check_ttl`, with `None` meaning no expiry."""
    if ttl is not None:
        check_ttl(ttl, name)


def check_ttl_ms(ttl_ms: object, name: str = "ttl_ms") -> None:
    """A lock TTL: an `int` number of milliseconds in 1..MAX_TTL_MS (as `positive_ms` in
    rust/src/store/validate.rs, with the same messages)."""
    ms = int64_arg(ttl_ms, name)
    if ms <= 0 or ms > MAX_TTL_MS:
        raise ValueError(f"{name} must be a positive number of milliseconds, got {ms}")


def check_limit(limit: object) -> None:
    """A rate limit: an `int` >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


def check_cost(cost: object) -> None:
    """A rate-limit cost: an `int` >= 0 (0 peeks without recording)."""
    if isinstance(cost, bool) or not isinstance(cost, int):
        raise TypeError(f"cost must be an int, not {type(cost).__name__}")
    if cost < 0:
        raise ValueError(f"cost must be >= 0, got {cost}")


def check_algorithm(algorithm: object) -> None:
    """One of the rate-limit algorithms the backends implement."""
    if algorithm not in RATE_LIMIT_ALGORITHMS:
        known = ", ".join(sorted(RATE_LIMIT_ALGORITHMS))
        raise ValueError(f"unknown rate-limit algorithm {algorithm!r}; expected one of {known}")


# Largest limit * window_ms of `gcra` (rust/src/store/rate_limit/gcra.rs MAX_SPAN): the Redis
# script's doubles are exact below 2^53.
GCRA_MAX_SPAN = (1 << 53) - 1


def check_gcra_span(limit: int, window_ms: int) -> None:
    """`gcra` needs `limit * window_ms < 2**53` (ValueError, as the store says)."""
    if limit * window_ms > GCRA_MAX_SPAN:
        raise ValueError(
            f"gcra needs limit * window_ms < 2**53, got limit={limit} and window_ms={window_ms}"
        )


def check_members(members: Iterable[object], name: str = "member") -> None:
    """Set members and hash fields: at least one, each a `str`."""
    count = 0
    for member in members:
        count += 1
        if not isinstance(member, str):
            raise TypeError(f"{name}s must be str, got {type(member).__name__}: {member!r}")
    if count == 0:
        raise TypeError(f"at least one {name} is required")


def check_wait_seconds(wait_seconds: object) -> float:
    """A lock wait: a finite number of seconds >= 0; returned as a float."""
    if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, (int, float)):
        raise TypeError(f"wait_seconds must be int | float, not {type(wait_seconds).__name__}")
    if not math.isfinite(wait_seconds) or wait_seconds < 0:
        raise ValueError(f"wait_seconds must be a finite number >= 0, got {wait_seconds!r}")
    return float(wait_seconds)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """A per-call option (`fallback=`, `on_lost=`): one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def hash_value_text(key: str, value: object) -> str:
    """A hash field value as stored: `str` as is, `int`/`float` as `str(value)` (like redis-py).

    Raises:
        TypeError: another type.
        SerializationError: NaN or an infinity (no number reads it back), naming `key`.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"hash values must be str | int | float, not {type(value).__name__}")
    check_finite(key, value, "hash value for key")
    return str(value)


# --- the Rust store's conversions, for the Redis backend (same errors, same rounding) ---------

# Largest TTL the store accepts, in ms (rust/src/store/validate.rs MAX_TTL_MS).
MAX_TTL_MS = 1 << 47
# Longest key the store accepts, in UTF-8 bytes (entry.rs MAX_KEY_LEN minus room for "lock:").
MAX_KEY_BYTES = (1 << 15) - 1 - 16
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def store_key(key: object) -> str:
    """A key as the store checks it: `str` (TypeError), non-empty and not too long (ValueError)."""
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("key must be a non-empty str")
    # A code point is at most 4 UTF-8 bytes: only long keys need encoding to be measured.
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(
            f"key is too long: {len(key.encode('utf-8', 'surrogatepass'))} bytes, "
            f"at most {MAX_KEY_BYTES} allowed"
        )
    return key


def seconds_to_ms(seconds: object, name: str = "ttl") -> int:
    """Seconds (`int | float`, not bool) -> ms rounded up to >= 1, as the store converts them."""
    if isinstance(seconds, bool):
        raise TypeError(f"{name} must be a number, not bool")
    if not isinstance(seconds, (int, float)):
        raise TypeError(f"{name} must be int | float seconds, not {type(seconds).__name__}")
    value = float(seconds)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {seconds}")
    ms = math.ceil(value * 1000.0)
    if ms > MAX_TTL_MS:
        raise ValueError(f"{name} is too large: {seconds} seconds")
    return max(ms, 1)


def int64_arg(value: object, name: str) -> int:
    """An `int` (not bool) in the signed 64-bit range (out of range: ValueError)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not bool")
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"{name} is out of the 64-bit range, got {value}")
    return int(value)


def count_arg(value: object, name: str) -> int:
    """A non-negative 64-bit `int` (not bool)."""
    value = int64_arg(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def ms_arg(value: object, name: str = "ttl_ms") -> int:
    """A lock TTL: an `int` number of milliseconds in 1..2^47."""
    value = int64_arg(value, name)
    if value <= 0 or value > MAX_TTL_MS:
        raise ValueError(f"{name} must be a positive number of milliseconds, got {value}")
    return value


def str_args(values: tuple[object, ...], what: str, command: str) -> None:
    """Set members / hash fields: at least one (ValueError, as the store), each a `str`."""
    if not values:
        raise ValueError(f"{command} needs at least one {what}")
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"{what}s must be str, not {type(value).__name__}")


def str_arg(value: object, name: str) -> None:
    """A `str` argument (member, field, token, pattern)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


# A SCAN cursor fits in 64 bits (the store's, and Redis's).
_MAX_CURSOR = 2**64 - 1


def check_scan_cursor(cursor: object) -> None:
    """A SCAN cursor: an `int` (not bool) in 0..2^64-1."""
    if isinstance(cursor, bool) or not isinstance(cursor, int):
        raise TypeError(f"cursor must be an int, not {type(cursor).__name__}")
    if not 0 <= cursor <= _MAX_CURSOR:
        raise ValueError(f"cursor must be in 0..2^64-1, got {cursor}")


def check_scan_count(count: object) -> None:
    """A SCAN count hint: an `int` (not bool), >= 1 and at most 2^32."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, not {type(count).__name__}")
    if not 1 <= count <= 2**32:
        raise ValueError(f"count must be in 1..2^32, got {count}")


def rate_limit_many_args(
    keys: object, limits: object, windows: object, cost: object, algorithm: object
) -> tuple[list[str], list[int], list[int], int]:
    """The arguments of `rate_limit_many`, checked as the Rust store checks them.

    Returns:
        (keys, limits, windows in ms, cost).

    Raises:
        TypeError: `keys`/`limits`/`windows` not a list or tuple, or an element of a wrong type.
        ValueError: no key, lengths that differ, a key given twice, a limit < 1, a bad window
            or cost, an unknown algorithm, or for "gcra" a `limit * window_ms` of 2**53 or more.
    """
    for value, name in ((keys, "keys"), (limits, "limits"), (windows, "windows")):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list, not {type(value).__name__}")
    assert isinstance(keys, (list, tuple))
    assert isinstance(limits, (list, tuple))
    assert isinstance(windows, (list, tuple))
    if len(limits) != len(keys) or len(windows) != len(keys):
        raise ValueError(
            "keys, limits and windows must have the same length, "
            f"got {len(keys)}, {len(limits)} and {len(windows)}"
        )
    checked_keys = [store_key(key) for key in keys]
    checked_limits = [count_arg(limit, "limit") for limit in limits]
    if 0 in checked_limits:
        raise ValueError("limit must be >= 1, got 0")
    windows_ms = [seconds_to_ms(window, "window") for window in windows]
    checked_cost = count_arg(cost, "cost")
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a str, not {type(algorithm).__name__}")
    check_algorithm(algorithm)
    if not checked_keys:
        raise ValueError("rate_limit_many needs at least one key")
    if len(set(checked_keys)) != len(checked_keys):
        twice = next(key for key in checked_keys if checked_keys.count(key) > 1)
        raise ValueError(f'rate_limit_many keys must be distinct, "{twice}" is given twice')
    if algorithm == "gcra":
        for limit, window_ms in zip(checked_limits, windows_ms, strict=True):
            check_gcra_span(limit, window_ms)
    return checked_keys, checked_limits, windows_ms, checked_cost
