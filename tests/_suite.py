"""A representative run of the whole service API, for the ACL and TLS servers.

`exercise(cache)` drives every method family once on a `CacheService` that is expected to be on
Redis (cache, counters, expiry, sets, hashes, locks, every rate-limit algorithm, decorators,
del_pattern, reset, pub/sub) and asserts the answers. (The cluster runs the whole shared suite:
the "cluster" backend of conftest.py.)
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cachebolt import CacheService, LockNotAcquired, RateLimitExceeded, WrongTypeError

ALGORITHMS = ("sliding_log", "fixed_window", "sliding_counter", "gcra")


def exercise(cache: CacheService, *, tag: str = "t") -> None:
    """Every method family once; raises AssertionError on a wrong answer."""
    assert cache.is_redis_available() is True
    cache.reset()

    # values, expiry, counters
    cache.set(f"{tag}:v", {"a": [1, 2]}, ttl=60)
    assert cache.get(f"{tag}:v") == {"a": [1, 2]}
    assert 59 <= cache.ttl(f"{tag}:v") <= 60
    assert cache.expire(f"{tag}:v", 120) is True and cache.ttl(f"{tag}:v") > 100
    assert cache.get_or_set(f"{tag}:gos", 60, lambda: "computed") == "computed"
    assert cache.get_or_set(f"{tag}:gos", 60, lambda: "again") == "computed"
    assert cache.incr(f"{tag}:n") == 1 and cache.incrby(f"{tag}:n", 9) == 10
    assert cache.decr(f"{tag}:n") == 9
    with pytest.raises(WrongTypeError):
        cache.incr(f"{tag}:v")
    assert cache.delete(f"{tag}:gos") is True and cache.delete(f"{tag}:gos") is False

    # sets and hashes
    assert cache.sadd(f"{tag}:s", "a", "b", "c") == 3
    assert cache.srem(f"{tag}:s", "c") == 1
    assert cache.sismember(f"{tag}:s", "a") is True
    assert cache.smembers(f"{tag}:s") == {"a", "b"} and cache.scard(f"{tag}:s") == 2
    assert cache.hset(f"{tag}:h", "f", 1) == 1
    assert cache.hget(f"{tag}:h", "f") == "1"
    assert cache.hgetall(f"{tag}:h") == {"f": "1"}
    assert cache.hdel(f"{tag}:h", "f") == 1
    with pytest.raises(WrongTypeError):
        cache.sadd(f"{tag}:n", "x")

    # locks
    token = cache.acquire_lock(f"{tag}:job", 10_000)
    assert token is not None
    assert cache.acquire_lock(f"{tag}:job", 10_000) is None
    assert cache.extend_lock(f"{tag}:job", "intruder", 10_000) is False
    assert cache.extend_lock(f"{tag}:job", token, 20_000) is True
    assert cache.release_lock(f"{tag}:job", "intruder") is False
    assert cache.release_lock(f"{tag}:job", token) is True
    with cache.lock(f"{tag}:ctx", 5_000), pytest.raises(LockNotAcquired):  # noqa: SIM117
        with cache.lock(f"{tag}:ctx", 5_000):
            pass

    literal = tag.replace("{", "{{").replace("}", "}}")  # a key template is a str.format template

    @cache.with_lock(f"{literal}:deco:{{n}}", ttl_ms=5_000)
    def locked(n: int) -> int:
        return n

    assert locked(3) == 3

    # rate limits, every algorithm
    for algorithm in ALGORITHMS:
        key = f"{tag}:rl:{algorithm}"
        got = [cache.hit_rate_limit(key, 2, 60, algorithm=algorithm).allowed for _ in range(3)]
        assert got == [True, True, False], algorithm
        denied = cache.hit_rate_limit(key, 2, 60, algorithm=algorithm)
        assert denied.retry_after > 0 and denied.remaining == 0
    assert [cache.check_rate_limit(f"{tag}:crl", 1, 60) for _ in range(2)] == [True, False]

    @cache.rate_limited(limit=1, window_seconds=60, key=f"{literal}:deco-rl")
    def limited() -> str:
        return "ok"

    assert limited() == "ok"
    with pytest.raises(RateLimitExceeded):
        limited()

    # pub/sub
    got: list[Any] = []
    arrived = threading.Event()

    def on_message(message: Any) -> None:
        got.append(message)
        arrived.set()

    with cache.subscribe(f"{tag}:ch", on_message):
        receivers = cache.publish(f"{tag}:ch", {"hello": 1})
        assert receivers == 1
        assert arrived.wait(5), "no message within 5 s"
    assert got == [{"hello": 1}]

    # pattern deletion and reset
    for i in range(30):
        cache.set(f"{tag}:page:{i}", i)
    cache.set(f"{tag}:keep", 1)
    assert cache.del_pattern(f"{tag}:page:*") == 30
    assert cache.get(f"{tag}:page:0") is None and cache.get(f"{tag}:keep") == 1
    cache.reset()
    assert cache.get(f"{tag}:keep") is None and cache.get(f"{tag}:v") is None
    assert cache.acquire_lock(f"{tag}:job", 1_000) is not None  # lock state went too
    assert cache.check_rate_limit(f"{tag}:crl", 1, 60) is True  # and rate-limit state
    assert cache.is_redis_available() is True
    stats = cache.stats()
    assert stats["backend"] == "redis" and stats["redis_available"] is True
