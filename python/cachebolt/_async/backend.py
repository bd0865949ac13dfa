"""`AsyncBackend`: what the service needs from a backend, `MemoryStore`'s method surface.

Values are `bytes`, keys as the user wrote them, TTLs seconds (locks: ms). A backend checks its
arguments as the store does and a failed call changes nothing: the service's hot path relies on it.
"""

from __future__ import annotations

import builtins
from typing import Protocol

__all__ = ["AsyncBackend"]


class AsyncBackend(Protocol):
    """The backend interface, one method per store command."""

    async def get(self, key: str) -> bytes | None:
        """The value of a string key, or None; counts a hit or a miss."""
        ...

    async def lookup(self, key: str) -> bytes | None:
        """`get`, counting a hit but not a miss: the caller counts what its miss becomes."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store a value; `ttl` in seconds, None for no expiry."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove a key of any type; True when one was removed."""
        ...

    async def exists(self, key: str) -> bool:
        """True when the key exists; counts nothing."""
        ...

    async def incrby(self, key: str, amount: int) -> int:
        """Add to an integer (a missing key counts from 0), keeping its TTL."""
        ...

    async def ttl(self, key: str) -> int:
        """Seconds left; -2 missing, -1 no expiry."""
        ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Set a TTL in seconds on an existing key; False when missing."""
        ...

    async def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        """One SCAN step: (next cursor, keys); cursor 0 ends it."""
        ...

    async def del_pattern(self, pattern: str) -> int:
        """Delete the keys matching a Redis glob, incrementally; the count removed."""
        ...

    async def flush(self) -> int:
        """Delete every key of this service (only under the key prefix in Redis)."""
        ...

    async def sadd(self, key: str, *members: str) -> int:
        """Add set members; the count newly added."""
        ...

    async def srem(self, key: str, *members: str) -> int:
        """Remove set members; the count removed."""
        ...

    async def sismember(self, key: str, member: str) -> bool:
        """True when `member` is in the set."""
        ...

    async def smembers(self, key: str) -> builtins.set[str]:
        """Every member of the set."""
        ...

    async def scard(self, key: str) -> int:
        """The number of members."""
        ...

    async def hset(self, key: str, field: str, value: str) -> int:
        """Set a hash field; 1 when new, 0 when overwritten."""
        ...

    async def hget(self, key: str, field: str) -> str | None:
        """A hash field, or None."""
        ...

    async def hgetall(self, key: str) -> dict[str, str]:
        """Every field of the hash."""
        ...

    async def hdel(self, key: str, *fields: str) -> int:
        """Remove hash fields; the count removed."""
        ...

    async def acquire_lock(self, key: str, ttl_ms: int) -> str | None:
        """Take the lock at `lock:<key>`: a fresh token, or None when held."""
        ...

    async def acquire_fenced_lock(self, key: str, ttl_ms: int) -> tuple[str, int] | None:
        """Take the lock at `lock:<key>` with a fence number: (token, fence), or None when held."""
        ...

    async def release_lock(self, key: str, token: str) -> bool:
        """Release when `token` holds the lock, atomically."""
        ...

    async def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        """Reset the lock's TTL when `token` holds it."""
        ...

    async def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int,
        algorithm: str,
    ) -> tuple[bool, int, float, float]:
        """Record `cost` hits at `ratelimit:<key>` if they fit.

        Returns (allowed, remaining, reset_after, retry_after), times in seconds.
        """
        ...

    async def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int,
        algorithm: str,
    ) -> list[tuple[bool, int, float, float]]:
        """Record `cost` hits at every `ratelimit:<key>` if each fits its limit, else at none.

        Atomic (one shard-locked step in memory, one script in Redis). Returns per key
        (allowed, remaining, reset_after, retry_after): whether that key alone had room; the
        call was admitted iff all did. Keys are distinct; in a Redis Cluster they share a slot.
        """
        ...

    async def stats(self) -> dict[str, int]:
        """Raw counters (hits, misses, keys, lock_acquired, ...)."""
        ...

    async def aclose(self) -> None:
        """Release the backend's resources (idempotent)."""
        ...
