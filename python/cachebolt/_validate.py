"""Argument checks shared by both services and every backend.

Each check raises `TypeError` for a wrong type and `ValueError` for a wrong value, before anything
is changed. The sync service's hot path leaves key and TTL checks to the Rust store, which raises
the same types; these helpers serve every other path and the Redis backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._constants import RATE_LIMIT_ALGORITHMS

__all__ = [
    "bool_error",
    "check_algorithm",
    "check_cost",
    "check_key",
    "check_limit",
    "check_members",
    "check_optional_ttl",
    "check_ttl",
    "check_ttl_ms",
    "check_wait_seconds",
    "hash_value_text",
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
    """A lock TTL: an `int` number of milliseconds > 0."""
    if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int):
        raise TypeError(
            f"{name} must be an int number of milliseconds, not {type(ttl_ms).__name__}"
        )
    if ttl_ms <= 0:
        raise ValueError(f"{name} must be > 0 milliseconds, got {ttl_ms}")


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


def hash_value_text(value: object) -> str:
    """A hash field value as stored: `str` as is, `int`/`float` as `str(value)` (like redis-py)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"hash values must be str | int | float, not {type(value).__name__}")
    return str(value)
