"""Values, expiry, counters, keyspace and the service lifecycle, on both services."""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import sys
from types import FrameType
from typing import Any

import pytest
from _servers import free_port
from cachebolt import (
    AsyncCacheService,
    CacheConfig,
    CacheService,
    SerializationError,
    WrongTypeError,
)
from cachebolt._core import MemoryStore
from conftest import Clock


def test_set_get_returns_a_json_round_trip(cache: Any) -> None:
    value = {"name": "Ada", "tags": ("a", "b"), 1: [1.5, None, True], "nested": {"x": (1,)}}
    assert cache.set("k", value) is None
    expected = {"name": "Ada", "tags": ["a", "b"], "1": [1.5, None, True], "nested": {"x": [1]}}
    assert cache.get("k") == expected


@pytest.mark.parametrize("value", [0, -7, 2**62, 3.25, "", "žluťoučký 🐎", [], {}, True, False])
def test_scalars_round_trip_exactly(cache: Any, value: Any) -> None:
    cache.set("k", value)
    got = cache.get("k")
    assert got == value and type(got) is type(value)


@dataclasses.dataclass
class Reading:
    sensor: str
    value: float


class Level(enum.Enum):
    LOW = 0.5
    UNKNOWN = math.inf


NON_FINITE = [
    math.nan,
    math.inf,
    -math.inf,
    [1, {"a": [None, math.nan]}],
    {"k": (1, "null", math.inf)},
    {math.nan: "a float key"},
    Reading("t1", -math.inf),
    [Level.LOW, {"level": Level.UNKNOWN}],
]


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
def test_nan_and_infinities_are_refused_on_every_write_and_change_nothing(
    cache: Any, value: Any
) -> None:
    # orjson writes them as null: stored, they would come back as None.
    cache.set("kept", "old", ttl=100)
    cache.hset("h", "f", "old")
    with cache.subscribe("ch", lambda message: None):
        refused = r"^cannot JSON-encode the value for key 'kept': "
        with pytest.raises(SerializationError, match=refused) as info:
            cache.set("kept", value, ttl=5)
        assert info.value.key == "kept"
        with pytest.raises(SerializationError, match="not a JSON number"):
            cache.get_or_set("computed", 60, lambda: value)
        with pytest.raises(SerializationError, match="message for channel 'ch'"):
            cache.publish("ch", value)
        assert cache.publish("ch", "after") == 1
    assert cache.get("kept") == "old" and cache.ttl("kept") == 100
    assert cache.get("computed", "MISSING") == "MISSING"
    if isinstance(value, float):
        with pytest.raises(SerializationError, match="hash value for key 'h'"):
            cache.hset("h", "f", value)
        assert cache.hgetall("h") == {"f": "old"}
    # null itself, and the text "null", are still values.
    cache.set("n", [None, "null", {"null": None}, 1.5])
    assert cache.get("n", "MISSING") == [None, "null", {"null": None}, 1.5]


def test_nan_is_refused_the_same_way_during_fallback() -> None:
    refused = CacheConfig(enabled=True, host="127.0.0.1", port=free_port(), connect_timeout_ms=200)
    messages = []
    for service in (CacheService(), CacheService(refused)):
        with service:
            with pytest.raises(SerializationError) as info:
                service.set("x", {"a": [math.nan]})
            messages.append(str(info.value))
            assert service.get("x", "MISSING") == "MISSING"
    assert messages[0] == messages[1]


def test_get_missing_returns_default(cache: Any) -> None:
    assert cache.get("missing") is None
    assert cache.get("missing", "dflt") == "dflt"
    assert cache.get("missing", default=0) == 0


def test_stored_none_is_returned_not_the_default(cache: Any) -> None:
    cache.set("k", None)
    assert cache.get("k", "dflt") is None


def test_set_overwrites(cache: Any) -> None:
    cache.set("k", 1)
    cache.set("k", [2])
    assert cache.get("k") == [2]


def test_ttl_expires_value(cache: Any, clock: Clock) -> None:
    cache.set("k", "v", ttl=10)
    clock.advance(9.999)
    assert cache.get("k") == "v"
    clock.advance(0.001)
    assert cache.get("k", "gone") == "gone"
    assert cache.ttl("k") == -2


def test_float_ttl(cache: Any, clock: Clock) -> None:
    cache.set("k", "v", ttl=0.25)
    clock.advance(0.249)
    assert cache.get("k") == "v"
    clock.advance(0.001)
    assert cache.get("k") is None


def test_set_without_ttl_clears_the_previous_ttl(cache: Any, clock: Clock) -> None:
    cache.set("k", 1, ttl=5)
    cache.set("k", 2)
    assert cache.ttl("k") == -1
    clock.advance(3600)
    assert cache.get("k") == 2


def test_ttl_reports_seconds_left(cache: Any, clock: Clock) -> None:
    assert cache.ttl("missing") == -2
    cache.set("forever", 1)
    assert cache.ttl("forever") == -1
    cache.set("k", 1, ttl=100)
    assert cache.ttl("k") == 100
    clock.advance(30)
    assert cache.ttl("k") == 70


def test_expire(cache: Any, clock: Clock) -> None:
    assert cache.expire("missing", 10) is False
    cache.set("k", 1)
    assert cache.expire("k", 10) is True
    assert cache.ttl("k") == 10
    clock.advance(10)
    assert cache.get("k") is None
    assert cache.expire("k", 10) is False


def test_delete(cache: Any) -> None:
    cache.set("k", 1)
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_delete_removes_any_type(cache: Any) -> None:
    cache.sadd("s", "a")
    cache.hset("h", "f", "v")
    assert cache.delete("s") is True
    assert cache.delete("h") is True
    assert cache.scard("s") == 0 and cache.hgetall("h") == {}


def test_del_pattern_removes_only_matching_keys(cache: Any) -> None:
    for key in ["feed:user:1:page:1", "feed:user:1:page:2", "feed:user:2:page:1", "profile:1"]:
        cache.set(key, 1)
    cache.sadd("feed:user:1:likes", "x")
    assert cache.del_pattern("feed:user:1:*") == 3
    assert cache.get("feed:user:2:page:1") == 1
    assert cache.get("profile:1") == 1
    assert cache.del_pattern("feed:user:?:page:[12]") == 1
    assert cache.del_pattern("nothing:*") == 0


def test_reset_clears_everything(cache: Any, store: MemoryStore) -> None:
    cache.set("a", 1)
    cache.sadd("s", "m")
    cache.hset("h", "f", 1)
    cache.incr("n")
    assert cache.acquire_lock("job", 10_000) is not None
    assert cache.check_rate_limit("rl", 1, 60) is True
    assert cache.reset() is None
    assert cache.get("a") is None and cache.scard("s") == 0 and cache.hgetall("h") == {}
    assert cache.acquire_lock("job", 10_000) is not None  # the lock went too
    assert cache.check_rate_limit("rl", 1, 60) is True  # and the rate-limit state
    assert sorted(store.keys()) == ["lock:job", "ratelimit:rl"]


def test_incr_incrby_decr(cache: Any) -> None:
    assert cache.incr("n") == 1
    assert cache.incr("n") == 2
    assert cache.incrby("n", 10) == 12
    assert cache.incrby("n", -20) == -8
    assert cache.decr("n") == -9
    assert cache.decr("fresh") == -1
    assert cache.incrby("other", 5) == 5
    assert cache.get("n") == -9  # counters are JSON integers to `get`


def test_incr_counts_on_a_json_integer_and_keeps_the_ttl(cache: Any, clock: Clock) -> None:
    cache.set("n", 41, ttl=10)
    assert cache.incr("n") == 42
    assert cache.ttl("n") == 10
    clock.advance(10)
    assert cache.incr("n") == 1


@pytest.mark.parametrize("value", ["41", 4.5, [1], {"a": 1}, None])
def test_incr_on_a_non_integer_raises_wrong_type(cache: Any, value: Any) -> None:
    cache.set("n", value)
    with pytest.raises(WrongTypeError):
        cache.incr("n")
    with pytest.raises(WrongTypeError):
        cache.incrby("n", 2)
    with pytest.raises(WrongTypeError):
        cache.decr("n")
    assert cache.get("n") == value


def test_incr_on_a_set_raises_wrong_type(cache: Any) -> None:
    cache.sadd("s", "a")
    with pytest.raises(WrongTypeError):
        cache.incr("s")


def test_get_of_invalid_stored_bytes_names_the_key(cache: Any, store: MemoryStore) -> None:
    store.set("raw", b"\xff not json")
    with pytest.raises(SerializationError) as info:
        cache.get("raw")
    assert info.value.key == "raw"
    assert "'raw'" in str(info.value)


def test_stats_counts_exactly(cache: Any, backend: str) -> None:
    stats = cache.stats()
    assert stats["backend"] == ("memory" if backend == "memory" else "redis")  # cluster: "redis"
    assert stats["hits"] == 0 and stats["misses"] == 0 and stats["hit_rate"] == 0.0
    assert stats["redis_available"] is (backend != "memory")
    cache.set("a", 1)
    cache.get("a")
    cache.get("a")
    cache.get("a")
    cache.get("nope")
    token = cache.acquire_lock("l", 1000)
    assert cache.acquire_lock("l", 1000) is None
    cache.release_lock("l", token)
    cache.check_rate_limit("r", 1, 60)
    cache.check_rate_limit("r", 1, 60)
    stats = cache.stats()
    assert {k: stats[k] for k in ("hits", "misses", "hit_rate")} == {
        "hits": 3,
        "misses": 1,
        "hit_rate": 0.75,
    }
    assert stats["lock_acquired"] == 1 and stats["lock_contended"] == 1
    assert stats["rate_limit_allowed"] == 1 and stats["rate_limit_denied"] == 1
    assert stats["keys"] == 2  # "a" and the rate-limit state
    assert stats["evictions"] == 0 and stats["expired"] == 0
    if backend == "memory":  # the store's own byte count; Redis mode does not report one
        assert stats["used_bytes"] > 0


def test_stats_keys_counts_live_keys_only(cache: Any, clock: Clock, backend: str) -> None:
    # The memory store under test never sweeps: the expired keys are still stored.
    for i in range(1000):
        cache.set(f"t{i}", i, ttl=60)
    cache.set("forever", 1)
    assert cache.stats()["keys"] == 1001
    clock.advance(61)
    stats = cache.stats()
    assert stats["keys"] == 1
    if backend == "memory":
        assert stats["expired"] == 0  # counted out, not removed


def test_memory_store_len_and_keys_skip_expired_keys_before_the_sweep() -> None:
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=3600)
    try:
        for i in range(1000):
            store.set(f"t{i}", b"v", 0.05)
        store.advance_clock(50)
        stats = store.stats()
        assert (len(store), stats["keys"], stats["expired"]) == (0, 0, 0)
        assert store.sweep_expired() == 1000
    finally:
        store.close()


def test_redis_availability_and_client_match_the_backend(cache: Any, backend: str) -> None:
    assert cache.is_redis_available() is (backend != "memory")
    assert (cache.get_client() is None) is (backend == "memory")
    if backend == "cluster":
        assert "Cluster" in type(cache.get_client()).__name__


def test_close_is_idempotent_and_the_cache_keeps_answering(cache: Any) -> None:
    cache.set("k", 1)
    cache.close()
    cache.close()
    assert cache.get("k") == 1


def test_zero_config_services() -> None:
    with CacheService() as cache:
        cache.set("k", (1, 2), ttl=60)
        assert cache.get("k") == [1, 2]
        assert cache.config == CacheConfig()
        assert repr(cache).startswith("<CacheService backend='memory'")


async def test_zero_config_async_service() -> None:
    async with AsyncCacheService() as cache:
        await cache.set("k", (1, 2), ttl=60)
        assert await cache.get("k") == [1, 2]
        assert repr(cache).startswith("<AsyncCacheService backend='memory'")


def test_enabled_config_logs_one_error_and_serves_from_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    refused = CacheConfig(enabled=True, host="127.0.0.1", port=free_port())
    with CacheService(refused) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert cache.is_redis_available() is False
        assert cache.get_client() is not None  # the client, which keeps probing
        assert cache.stats()["backend"] == "memory"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "serving from memory" in errors[0].getMessage()


def test_from_env_builds_the_configured_service() -> None:
    env = {"CACHE_MEMORY_MAX_KEYS": "2", "FEED_CACHE_TTL_SECONDS": "60"}
    with CacheService.from_env(env) as cache:
        assert cache.config.memory_max_keys == 2
        assert cache.config.feed_cache_ttl_seconds == 60
        for key in "abc":
            cache.set(key, key)
        stats = cache.stats()
        assert stats["keys"] == 2 and stats["evictions"] == 1


async def test_async_from_env() -> None:
    cache = AsyncCacheService.from_env({"VALKEY_KEY_PREFIX": "app:"})
    async with cache:
        assert cache.config.key_prefix == "app:"


# --- hot path: one Python frame plus one Rust call -----------------------------------------------


def _python_calls(fn: Any, *args: Any) -> list[str]:
    calls: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.memory_only(reason="checks that the memory service calls the Rust store directly")
def test_sync_hot_path_is_one_python_frame(sync_cache: CacheService, store: MemoryStore) -> None:
    assert sync_cache._backend is store  # no Python wrapper between the service and Rust
    sync_cache.set("k", {"a": 1}, 60)
    sync_cache.sadd("s", "m")
    sync_cache.hset("h", "f", "v")
    token = sync_cache.acquire_lock("held", 60_000)
    assert token is not None
    cases: list[tuple[str, tuple[Any, ...]]] = [
        ("get", ("k",)),
        ("get", ("missing",)),
        ("set", ("k", {"a": [1, 2]}, 60)),
        ("set", ("k2", "v")),
        ("incr", ("n",)),
        ("sismember", ("s", "m")),
        ("hget", ("h", "f")),
        ("check_rate_limit", ("r", 10, 60)),
        ("acquire_lock", ("free", 1000)),
        ("release_lock", ("held", token)),
    ]
    for name, args in cases:
        assert _python_calls(getattr(sync_cache, name), *args) == [name], name
