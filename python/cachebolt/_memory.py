"""The in-memory backend: the Rust `MemoryStore`, as each service talks to it.

The blocking service uses the store itself; the asyncio service wraps it in
`AsyncMemoryBackend`, whose calls run inline on the event loop (they are short or detach from
the GIL).
"""

from __future__ import annotations

import builtins

from ._core import MemoryStore
from .config import CacheConfig

__all__ = ["AsyncMemoryBackend", "async_memory_backend", "memory_backend", "new_memory_store"]


def new_memory_store(config: CacheConfig) -> MemoryStore:
    """A store bounded and swept as `config` says."""
    return MemoryStore(
        max_keys=config.memory_max_keys,
        max_bytes=config.memory_max_bytes,
        max_rate_limit_bytes=config.memory_rate_limit_max_bytes,
        cleanup_interval_seconds=config.cleanup_interval_seconds or None,
    )


def memory_backend(store: MemoryStore) -> MemoryStore:
    """The blocking service's backend: the store itself, with no wrapper in between."""
    return store


def async_memory_backend(store: MemoryStore) -> AsyncMemoryBackend:
    """The asyncio service's backend: the store behind awaitable methods."""
    return AsyncMemoryBackend(store)


class AsyncMemoryBackend:
    """`MemoryStore` with awaitable methods (the `AsyncBackend` interface)."""

    __slots__ = ("_store",)

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get(self, key: str) -> bytes | None:
        return self._store.get(key)

    async def lookup(self, key: str) -> bytes | None:
        return self._store.lookup(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._store.set(key, value, ttl)

    async def delete(self, key: str) -> bool:
        return self._store.delete(key)

    async def exists(self, key: str) -> bool:
        return self._store.exists(key)

    async def incrby(self, key: str, amount: int) -> int:
        return self._store.incrby(key, amount)

    async def ttl(self, key: str) -> int:
        return self._store.ttl(key)

    async def expire(self, key: str, ttl: float) -> bool:
        return self._store.expire(key, ttl)

    async def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        return self._store.scan(cursor, pattern, count)

    async def del_pattern(self, pattern: str) -> int:
        return self._store.del_pattern(pattern)

    async def flush(self) -> int:
        return self._store.flush()

    async def sadd(self, key: str, *members: str) -> int:
        return self._store.sadd(key, *members)

    async def srem(self, key: str, *members: str) -> int:
        return self._store.srem(key, *members)

    async def sismember(self, key: str, member: str) -> bool:
        return self._store.sismember(key, member)

    async def smembers(self, key: str) -> builtins.set[str]:
        return self._store.smembers(key)

    async def scard(self, key: str) -> int:
        return self._store.scard(key)

    async def hset(self, key: str, field: str, value: str) -> int:
        return self._store.hset(key, field, value)

    async def hget(self, key: str, field: str) -> str | None:
        return self._store.hget(key, field)

    async def hgetall(self, key: str) -> dict[str, str]:
        return self._store.hgetall(key)

    async def hdel(self, key: str, *fields: str) -> int:
        return self._store.hdel(key, *fields)

    async def acquire_lock(self, key: str, ttl_ms: int) -> str | None:
        return self._store.acquire_lock(key, ttl_ms)

    async def acquire_fenced_lock(self, key: str, ttl_ms: int) -> tuple[str, int] | None:
        return self._store.acquire_fenced_lock(key, ttl_ms)

    async def release_lock(self, key: str, token: str) -> bool:
        return self._store.release_lock(key, token)

    async def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        return self._store.extend_lock(key, token, ttl_ms)

    async def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> tuple[bool, int, float, float]:
        return self._store.rate_limit(key, limit, window, cost, algorithm)

    async def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> list[tuple[bool, int, float, float]]:
        return self._store.rate_limit_many(keys, limits, windows, cost, algorithm)

    async def stats(self) -> dict[str, int]:
        return self._store.stats()

    async def aclose(self) -> None:
        self._store.close()
