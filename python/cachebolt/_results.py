"""Result types shared by both services: `RateLimitResult`, `FencedLock` and `stats()`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypedDict

__all__ = ["CacheStats", "FencedLock", "RateLimitResult", "build_stats"]


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The outcome of one `hit_rate_limit` call; truthy when the hit was allowed.

    Attributes:
        allowed: True when the hit was recorded; a denied hit consumes nothing.
        limit: the limit the hit was checked against.
        remaining: hits still allowed in the current window after this one.
        reset_after: seconds until the window has fully emptied.
        retry_after: seconds until the same hit could be allowed (0.0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float

    def __bool__(self) -> bool:
        return self.allowed


class FencedLock(NamedTuple):
    """A lock taken by `acquire_fenced_lock`: its token and its fence number.

    Send `fence` with every write and have the resource refuse fences below the highest it has
    accepted (docs/semantics.md, "Locks").

    Attributes:
        token: releases or extends the lock, like the token of `acquire_lock`.
        fence: larger than the fence of every earlier holder of this lock on the same backend;
            a memory fence (token "mem-...") compares only with fences of the same process.
    """

    token: str
    fence: int


class CacheStats(TypedDict):
    """What `stats()` returns: counters of the service and of its backend.

    docs/semantics.md ("stats()") details `keys`, `misses` and `redis_maxmemory_policy`.

    Attributes:
        backend: "memory" or "redis", the backend serving calls now.
        hits: lookups that found a value (`get`, `get_or_set`), including the coalesced ones.
        misses: lookups that found nothing; each `get_or_set` miss is a call of its `fn`.
        coalesced: `get_or_set` calls that missed and then took the value another caller of
            this service computed, instead of computing it: counted in `hits`.
        hit_rate: hits / (hits + misses), 0.0 before the first lookup.
        lock_acquired: locks taken.
        lock_contended: lock attempts that found the lock held.
        rate_limit_allowed: rate-limit hits allowed.
        rate_limit_denied: rate-limit hits denied.
        redis_available: True when Redis serves calls.
        keys: keys in the backend, with locks, rate-limit state and expired unswept keys.
        evictions: keys evicted by the memory bound.
        expired: keys removed because their TTL ran out.
        used_bytes: bytes held by evictable keys of the memory backend.
        rate_limit_bytes: bytes of rate-limit state in the memory backend (under its bound).
        fallback_calls: calls served without Redis while it was down (Redis mode).
        fallback_locks: locks taken in memory while Redis was down (this process only).
        fallback_rate_limits: rate-limit checks counted in memory while Redis was down.
        breaker_state: "closed", "open", "half_open", "connecting" (before the first
            connection attempt) or "disabled" (memory mode).
        redis_maxmemory_policy: Redis's maxmemory-policy; "unknown" when unread, "disabled" in
            memory mode.
        decode_errors: `get_or_set` calls that replaced stored bytes that are not JSON.
    """

    backend: str
    hits: int
    misses: int
    coalesced: int
    hit_rate: float
    lock_acquired: int
    lock_contended: int
    rate_limit_allowed: int
    rate_limit_denied: int
    redis_available: bool
    keys: int
    evictions: int
    expired: int
    used_bytes: int
    rate_limit_bytes: int
    fallback_calls: int
    fallback_locks: int
    fallback_rate_limits: int
    breaker_state: str
    redis_maxmemory_policy: str
    decode_errors: int


def build_stats(
    raw: Mapping[str, int],
    *,
    backend: str,
    redis_available: bool,
    breaker_state: str = "disabled",
    redis_maxmemory_policy: str = "disabled",
    decode_errors: int = 0,
    coalesced: int = 0,
    computed: int = 0,
) -> CacheStats:
    """Shape a backend's raw counters and the service's own into `CacheStats` (missing
    counters read as 0).

    Args:
        coalesced: `get_or_set` misses that took the value another caller computed: hits.
        computed: the other `get_or_set` misses (the backend counted none of them): misses.
    """
    hits = raw.get("hits", 0) + coalesced
    misses = raw.get("misses", 0) + computed
    lookups = hits + misses
    return CacheStats(
        backend=backend,
        hits=hits,
        misses=misses,
        coalesced=coalesced,
        hit_rate=hits / lookups if lookups else 0.0,
        lock_acquired=raw.get("lock_acquired", 0),
        lock_contended=raw.get("lock_contended", 0),
        rate_limit_allowed=raw.get("rate_limit_allowed", 0),
        rate_limit_denied=raw.get("rate_limit_denied", 0),
        redis_available=redis_available,
        keys=raw.get("keys", 0),
        evictions=raw.get("evictions", 0),
        expired=raw.get("expired", 0),
        used_bytes=raw.get("used_bytes", 0),
        rate_limit_bytes=raw.get("rate_limit_bytes", 0),
        fallback_calls=raw.get("fallback_calls", 0),
        fallback_locks=raw.get("fallback_locks", 0),
        fallback_rate_limits=raw.get("fallback_rate_limits", 0),
        breaker_state=breaker_state,
        redis_maxmemory_policy=redis_maxmemory_policy,
        decode_errors=decode_errors,
    )
