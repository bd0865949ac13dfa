"""Type stubs for `cachebolt._core`, the Rust store (checked by `python -m mypy.stubtest`).

The store answers as Redis does. Keys are non-empty `str`, values `bytes`; a failed call changes
nothing. Errors: `WrongTypeError`, `CapacityError`, `ValueError` for bad arguments.
"""

import builtins
from collections.abc import Callable, Iterable
from typing import final

__all__ = ["GlobPattern", "MemoryStore", "__version__", "first_non_finite"]
__version__: str

def first_non_finite(
    value: object, children: Callable[[object], Iterable[object] | None]
) -> float | None:
    """The first NaN or infinite float in `value`, else None (orjson writes them as null).

    Dicts (keys and values), lists and tuples are walked in Rust; any other object that is not a
    str, an int or None goes to `children(obj)`: what orjson encodes inside it, or None.
    """

@final
class GlobPattern:
    """A Redis glob compiled once, matched in time linear in each name (Redis's answers)."""

    def __new__(cls, pattern: str) -> GlobPattern: ...
    @property
    def head(self) -> str:
        """The pattern up to its first `*` (all of it when it has none)."""

    @property
    def head_only(self) -> bool:
        """True when nothing but `*`s follows the head (Redis matches it without backtracking)."""

    def matching(self, names: list[bytes], skip: int) -> list[int]:
        """Indexes of the `names` whose bytes after the first `skip` match."""

@final
class MemoryStore:
    """A sharded, thread-safe, in-process keyspace with expiry, eviction, locks and rate limits.

    Args:
        max_keys: bound on the number of evictable keys (None: unbounded).
        max_bytes: bound on the bytes of values and rate-limit state (key + value + a fixed
            overhead per entry); values are evicted to make room; locks are outside it.
        max_rate_limit_bytes: bound on rate-limit state (None: half of `max_bytes`); live state
            is never evicted.
        cleanup_interval_seconds: period of the expiry sweep, a Rust thread that never takes the
            GIL (None: no sweep; `sweep_expired` still works).
        manual_clock: when True, time only moves through `advance_clock` (for tests).
    """

    def __new__(
        cls,
        *,
        max_keys: int | None = None,
        max_bytes: int | None = None,
        max_rate_limit_bytes: int | None = None,
        cleanup_interval_seconds: float | None = 30.0,
        manual_clock: bool = False,
    ) -> MemoryStore: ...
    def __len__(self) -> int:
        """Number of live keys: keys whose TTL has run out are not counted, swept or not (O(n))."""

    # --- strings -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The value of a string key, or None when missing or expired; counts a hit or a miss."""

    def lookup(self, key: str) -> bytes | None:
        """`get`, counting a hit but not a miss: the caller counts what its miss becomes."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store a string value. `ttl` in seconds (None: no expiry, discarding any previous TTL)."""

    def delete(self, key: str) -> bool:
        """Remove a key of any type; True when a key was removed."""

    def exists(self, key: str) -> bool:
        """True when the key exists and has not expired."""

    def incrby(self, key: str, amount: int) -> int:
        """Add `amount` to the integer at a string key (missing counts from 0); keeps its TTL."""

    # --- expiry ------------------------------------------------------------------------------
    def ttl(self, key: str) -> int:
        """Seconds left, rounded like Redis `TTL`; -2 for a missing key, -1 for no expiry."""

    def pttl(self, key: str) -> int:
        """Milliseconds left; -2 for a missing key, -1 for no expiry."""

    def expire(self, key: str, ttl: float) -> bool:
        """Set a TTL in seconds on an existing key; False for a missing key."""

    def persist(self, key: str) -> bool:
        """Remove the TTL of a key; True when a TTL was removed."""

    # --- keyspace ----------------------------------------------------------------------------
    def keys(self, pattern: str = "*") -> list[str]:
        """All live keys matching a Redis glob pattern. Runs without the GIL."""

    def scan(self, cursor: int = 0, pattern: str = "*", count: int = 100) -> tuple[int, list[str]]:
        """One step of a SCAN: returns (next cursor, keys); cursor 0 ends the iteration.

        Every key present for the whole iteration is returned at least once.
        """

    def del_pattern(self, pattern: str) -> int:
        """Delete every key matching a Redis glob pattern; the count removed. No GIL."""

    def flush(self) -> int:
        """Delete every key (locks and rate-limit state included); the count removed. No GIL."""

    def sweep_expired(self) -> int:
        """Remove expired keys now, in small batches; the count removed. Runs without the GIL."""

    # --- sets --------------------------------------------------------------------------------
    def sadd(self, key: str, *members: str) -> int:
        """Add members; the count newly added. At least one member is required."""

    def srem(self, key: str, *members: str) -> int:
        """Remove members; the count removed. An emptied set disappears."""

    def sismember(self, key: str, member: str) -> bool: ...
    def smembers(self, key: str) -> builtins.set[str]: ...
    def scard(self, key: str) -> int: ...

    # --- hashes ------------------------------------------------------------------------------
    def hset(self, key: str, field: str, value: str) -> int:
        """Set a field; 1 when the field is new, 0 when it was overwritten."""

    def hget(self, key: str, field: str) -> str | None: ...
    def hgetall(self, key: str) -> dict[str, str]: ...
    def hdel(self, key: str, *fields: str) -> int:
        """Remove fields; the count removed. An emptied hash disappears."""

    def hlen(self, key: str) -> int: ...

    # --- token locks (stored at "lock:<key>", never evicted) -------------------------------
    def acquire_lock(self, key: str, ttl_ms: int) -> str | None:
        """Take the lock when free: a fresh 128-bit random token (32 hex chars), else None.

        A key without expiry at the lock's name (never a lock) gets `ttl_ms`, so it ends.
        """

    def acquire_fenced_lock(self, key: str, ttl_ms: int) -> tuple[str, int] | None:
        """Take the lock when free: (token, fence), else None.

        The fence comes from a store-wide counter (1, 2, ...) incremented atomically with the
        acquisition, so a later holder of a lock always has a larger fence than an earlier one.
        Fences are comparable only within this store.
        """

    def release_lock(self, key: str, token: str) -> bool:
        """Release only when `token` matches the holder's; True when released."""

    def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        """Reset the lock's TTL to `ttl_ms` only when `token` matches; True when extended."""

    # --- rate limits (state at "ratelimit:<key>", never evicted) ---------------------------
    def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int,
        algorithm: str,
    ) -> tuple[bool, int, float, float]:
        """Record `cost` hits if they fit (`cost=0` peeks; a denied call consumes nothing).

        Args:
            window: seconds.
            algorithm: "sliding_log", "fixed_window", "sliding_counter" or "gcra".

        Returns:
            (allowed, remaining, reset_after, retry_after); the times in seconds, retry_after 0.0
            when allowed.

        Raises:
            ValueError: a bad argument; for "gcra", `limit * window_ms` >= 2**53.
            CapacityError: the hit needs more rate-limit state than the bound leaves.
        """

    def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int,
        algorithm: str,
    ) -> list[tuple[bool, int, float, float]]:
        """Record `cost` hits at every key if each fits its own limit and window, else at none.

        Atomic: the keys' shards are held together. Keys distinct; `algorithm` as in
        `rate_limit`.

        Returns:
            One (allowed, remaining, reset_after, retry_after) per key, in order; the call was
            admitted iff every `allowed` is True.

        Raises:
            CapacityError: an admitted call needs more rate-limit state than the bound leaves.
        """

    # --- clock and stats ---------------------------------------------------------------------
    def now_ms(self) -> int:
        """The store's clock in milliseconds (monotonic; manual when `manual_clock=True`)."""

    def advance_clock(self, ms: int) -> None:
        """Move a manual clock forward; ValueError on a system clock."""

    def stats(self) -> dict[str, int]:
        """Counters: keys (live, as `len()`), used_bytes, evictions, expired, hits, misses,
        lock_acquired, lock_contended, rate_limit_allowed, rate_limit_denied, rate_limit_bytes,
        max_keys, max_bytes, max_rate_limit_bytes (the bounds 0 = unbounded).
        """

    def close(self) -> None:
        """Stop the background sweep thread (idempotent). The store keeps working."""
