"""The peer libraries, each driven by the same batch loops in `cachebolt bench` and benches/.

A batch loop (`RunBatch`) runs one call per item of its batch with the method looked up once, so
a peer pays for its own call only. Every peer module is imported by the function that needs it:
this module imports none of them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .loops import Batch, RunBatch, each, each_with, pairs, pairs_with

# The leg name of each in-process peer cache and the module it needs.
PEER_CACHES = {"cachetools TTLCache": "cachetools", "moka-py": "moka_py", "theine": "theine"}


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class PeerCache:
    """An in-process peer cache that stores the value object itself (no codec).

    Attributes:
        name: the leg name, a key of `PEER_CACHES`.
        obj: the library's cache object.
        get: reads every key of a batch of keys.
        set: stores every (key, value) of a batch with the cache's TTL.
        delete: removes every key of a batch of keys (absent keys are no error).
    """

    name: str
    obj: Any
    get: RunBatch
    set: RunBatch
    delete: RunBatch


def peer_cache(name: str, capacity: int, ttl_seconds: int) -> PeerCache:
    """A new, empty in-process peer cache.

    Args:
        name: a key of `PEER_CACHES`.
        capacity: the most entries it holds.
        ttl_seconds: the time to live of every entry it stores (cachetools: of the cache).

    Raises:
        ValueError: `name` is not a peer cache.
        ModuleNotFoundError: the peer is not installed.
    """
    obj: Any
    if name == "cachetools TTLCache":
        import cachetools

        obj = cachetools.TTLCache(maxsize=capacity, ttl=ttl_seconds)
        return PeerCache(name, obj, each(obj.get), pairs(obj.__setitem__), each_with(obj.pop, None))
    if name == "moka-py":
        import moka_py

        obj = moka_py.Moka(capacity)
        return PeerCache(
            name, obj, each(obj.get), pairs_with(obj.set, ttl_seconds), each(obj.remove)
        )
    if name == "theine":
        import theine

        obj = theine.Cache(capacity)
        ttl = timedelta(seconds=ttl_seconds)
        return PeerCache(name, obj, each(obj.get), pairs_with(obj.set, ttl), each(obj.delete))
    raise ValueError(f"not a peer cache: {name!r} (one of {', '.join(PEER_CACHES)})")


# `limits`' strategies by the name of their algorithm.
LIMITS_STRATEGIES = {
    "fixed window": "FixedWindowRateLimiter",
    "moving window": "MovingWindowRateLimiter",
    "sliding window counter": "SlidingWindowCounterRateLimiter",
}


def limits_hit(storage: Any, strategy: str, limit: int, window_seconds: int) -> RunBatch:
    """A loop hitting each key of a batch once with `limits` (one hit of weight 1 per key).

    Args:
        storage: a `limits.storage` instance (MemoryStorage, RedisStorage, ...).
        strategy: a key of `LIMITS_STRATEGIES`.
        limit: hits allowed per window and key.
        window_seconds: the window, in seconds.

    Raises:
        KeyError: an unknown strategy.
    """
    from limits import RateLimitItemPerSecond, strategies

    limiter = getattr(strategies, LIMITS_STRATEGIES[strategy])(storage)
    hit, item = limiter.hit, RateLimitItemPerSecond(limit, window_seconds)

    def run(batch: Batch) -> None:
        for k in batch:
            hit(item, k)

    return run


def redis_py_runs(
    client: Any, prefix: str, ttl_seconds: int, field_text: str
) -> dict[str, RunBatch]:
    """redis-py doing cachebolt's commands with the same orjson codec, no cachebolt layer.

    Args:
        client: a `redis.Redis`.
        prefix: put before every key.
        ttl_seconds: the TTL of every value `set` stores.
        field_text: the value `hset` stores in every field.

    Returns:
        The loop per operation name it has: "get", "set" ((key, value) pairs), "delete", "incr",
        "sadd", "sismember", "hset" and "hget" ((container, member) pairs).
    """
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
    get, set_ = client.get, client.set

    def run_get(batch: Batch) -> None:
        for k in batch:
            b = get(prefix + k)
            if b is not None:
                loads(b)

    def run_set(batch: Batch) -> None:
        for k, v in batch:
            set_(prefix + k, dumps(v), ex=ttl_seconds)

    def prefixed(fn: Callable[..., object]) -> RunBatch:
        def run(batch: Batch) -> None:
            for k in batch:
                fn(prefix + k)

        return run

    def prefixed_pairs(fn: Callable[..., object], *extra: Any) -> RunBatch:
        def run(batch: Batch) -> None:
            for a, b in batch:
                fn(prefix + a, b, *extra)

        return run

    return {
        "get": run_get,
        "set": run_set,
        "delete": prefixed(client.delete),
        "incr": prefixed(client.incr),
        "sadd": prefixed_pairs(client.sadd),
        "sismember": prefixed_pairs(client.sismember),
        "hset": prefixed_pairs(client.hset, field_text),
        "hget": prefixed_pairs(client.hget),
    }
