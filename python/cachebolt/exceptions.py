"""Exceptions raised by cachebolt. Each is a `CacheError`; both backends raise the same types."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._results import RateLimitResult

__all__ = [
    "CacheError",
    "CapacityError",
    "ConfigError",
    "LockLost",
    "LockNotAcquired",
    "RateLimitExceeded",
    "SerializationError",
    "WrongTypeError",
]


class CacheError(Exception):
    """Base class of every cachebolt error."""


class SerializationError(CacheError, ValueError):
    """A value could not be JSON-encoded (on write) or decoded (on read); names the key."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class WrongTypeError(CacheError, TypeError):
    """A command met a value of another type (Redis WRONGTYPE), or `incr` met a non-integer.

    Lock and rate-limit commands also raise it for data at their keys that cachebolt cannot have
    written (a fence counter that is not an integer, rate-limit state that does not parse); the
    message names the key and never repeats the stored data.
    """


def wrong_type_at(what: str, key: object, exc: WrongTypeError) -> WrongTypeError:
    """`exc` again, naming `what` and `key` (a plain function: the callers' hot paths stay one
    Python frame, and pay only when they raise)."""
    return WrongTypeError(f"{what} {key!r}: {exc}")


class ConfigError(CacheError, ValueError):
    """A configuration value is invalid; the message names the variable."""


class CapacityError(CacheError, ValueError):
    """A value is larger than the in-memory backend's bound and can never be stored, a rate
    limit needs more state than the backend's rate-limit bound leaves, or Redis refused a write
    because it is out of memory (`maxmemory` under `noeviction`). Nothing is recorded."""


class RateLimitExceeded(CacheError):
    """A rate limit denied the call; `.retry_after` seconds until it may pass, `.result` in full."""

    def __init__(self, result: RateLimitResult, key: str | None = None) -> None:
        where = f" for {key!r}" if key is not None else ""
        super().__init__(
            f"rate limit of {result.limit} exceeded{where}; retry after {result.retry_after:.3f}s"
        )
        self.result = result
        self.retry_after = result.retry_after
        self.key = key


class BackendUnavailable(CacheError):
    """Redis/Valkey could not serve and the call was not to fall back to memory.

    The message names the cause: connection refused, timeout, authentication failed for user
    `<name>` (never the password), TLS verification failed, cluster unreachable. Raised at
    start-up when `CacheConfig.required` is set, and by a lock refused under the
    "fail_closed" outage policy; otherwise the fallback layer serves the call from memory.
    """


class LockNotAcquired(CacheError):
    """A lock was held by someone else (after waiting, when a wait was asked for)."""

    def __init__(self, lock_key: str, wait_seconds: float = 0.0) -> None:
        waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
        super().__init__(f"lock {lock_key!r} is held by another owner{waited}")
        self.lock_key = lock_key


class LockLost(CacheError):
    """A `lock()` block ended and its release found the lock expired or taken by another holder.

    The protected work ran without exclusion for part of its time (the body outlived `ttl_ms`).
    """

    def __init__(self, lock_key: str, ttl_ms: int) -> None:
        super().__init__(
            f"lock {lock_key!r} was lost before its release: it expired or changed owner while "
            f"the block ran (ttl_ms={ttl_ms} too short?)"
        )
        self.lock_key = lock_key
