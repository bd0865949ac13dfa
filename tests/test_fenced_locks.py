"""Fenced locks: `acquire_fenced_lock` / `fenced_lock()` on every backend, the Redis fence counter
(its slot, its TTL, its survival of `reset()`), and fences from memory during an outage."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import redis
from _servers import RedisServer
from cachebolt import CacheConfig, FencedLock, LockNotAcquired, WrongTypeError
from cachebolt._redis import FENCE_KEEP_MS, fence_key
from conftest import Clock, ServiceFactory

TOKEN = re.compile(r"[0-9a-f]{32}")
# Lock names whose braces decide the cluster slot in every way: a tag, an empty tag, an
# unclosed brace, a lone closing brace.
AWKWARD_NAMES = ["order:1", "{user:42}:orders", "{}", "a}b", "}{", "{open", "k{}}x", "é{ü}"]


def test_fences_increase_with_each_acquisition(cache: Any, store: Any) -> None:
    first = cache.acquire_fenced_lock("job", 10_000)
    assert isinstance(first, FencedLock) and TOKEN.fullmatch(first.token)
    assert first.fence > 0
    assert cache.acquire_fenced_lock("job", 10_000) is None  # held
    assert cache.acquire_lock("job", 10_000) is None  # the same lock as acquire_lock's
    assert store.keys("lock:*") == ["lock:job"]
    assert cache.extend_lock("job", first.token, 20_000) is True
    assert cache.release_lock("job", first.token) is True
    fences = [first.fence]
    for _ in range(5):
        held = cache.acquire_fenced_lock("job", 10_000)
        assert held is not None and held.token != first.token
        fences.append(held.fence)
        assert cache.release_lock("job", held.token) is True
    assert fences == sorted(set(fences))  # strictly increasing


def test_a_holder_that_outlived_its_ttl_has_the_lower_fence(cache: Any, clock: Clock) -> None:
    paused = cache.acquire_fenced_lock("job", 1000)
    clock.advance(1.0)  # the holder was paused past its TTL
    successor = cache.acquire_fenced_lock("job", 1000)
    assert paused is not None and successor is not None
    assert successor.fence > paused.fence
    assert cache.release_lock("job", paused.token) is False
    assert cache.extend_lock("job", paused.token, 1000) is False
    assert cache.release_lock("job", successor.token) is True


def test_plain_acquisitions_do_not_disturb_the_fence_order(cache: Any) -> None:
    first = cache.acquire_fenced_lock("job", 10_000)
    assert first is not None and cache.release_lock("job", first.token)
    plain = cache.acquire_lock("job", 10_000)
    assert plain is not None and cache.release_lock("job", plain)
    later = cache.acquire_fenced_lock("job", 10_000)
    assert later is not None and later.fence > first.fence


def test_fenced_lock_context_manager(cache: Any) -> None:
    with cache.fenced_lock("report", 30_000) as held:
        assert isinstance(held, FencedLock) and TOKEN.fullmatch(held.token)
        assert cache.acquire_fenced_lock("report", 1000) is None
        with pytest.raises(LockNotAcquired), cache.fenced_lock("report", 1000):
            pytest.fail("body must not run")
    again = cache.acquire_fenced_lock("report", 1000)
    assert again is not None and again.fence > held.fence
    with cache.lock("other", 1000) as token:  # lock() still yields the bare token
        assert isinstance(token, str) and TOKEN.fullmatch(token)


def test_fences_survive_reset(cache: Any) -> None:
    before = cache.acquire_fenced_lock("job", 10_000)
    cache.reset()  # deletes the lock and, on Redis, the fence counter
    after = cache.acquire_fenced_lock("job", 10_000)
    assert before is not None and after is not None and after.fence > before.fence


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_any_lock_name_works_on_every_backend(cache: Any, name: str) -> None:
    # On the cluster this is the CROSSSLOT check: lock and counter must share a slot.
    held = cache.acquire_fenced_lock(name, 10_000)
    assert held is not None
    assert cache.acquire_fenced_lock(name, 10_000) is None
    assert cache.release_lock(name, held.token) is True
    again = cache.acquire_fenced_lock(name, 10_000)
    assert again is not None and again.fence > held.fence


def test_bad_arguments_change_nothing(cache: Any, store: Any) -> None:
    for bad_key, error in (("", ValueError), (7, TypeError)):
        with pytest.raises(error):
            cache.acquire_fenced_lock(bad_key, 1000)
    for bad_ttl, error in ((0, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error):
            cache.acquire_fenced_lock("job", bad_ttl)
    assert store.keys() == []


# --- the Redis fence counter ---------------------------------------------------------------------


def test_the_counter_shares_the_lock_slot_under_any_prefix(
    cluster_client: redis.RedisCluster,
) -> None:
    # The server's own CLUSTER KEYSLOT is the oracle (fence_key computes slots with redis-py's).
    for prefix in ["", "app:", "{app}:", "app{", "{}app:", "x}"]:
        for name in AWKWARD_NAMES:
            counter = fence_key(prefix, name)
            assert counter.startswith(prefix + "fence:")
            lock_slot = cluster_client.cluster_keyslot(prefix + "lock:" + name)
            assert cluster_client.cluster_keyslot(counter) == lock_slot, (prefix, name)


@pytest.mark.parametrize("prefix", ["app:", "app{:"])
def test_cluster_with_an_awkward_prefix(
    svc: ServiceFactory, cluster_config: CacheConfig, prefix: str
) -> None:
    cache = svc(dataclasses.replace(cluster_config, key_prefix=prefix))
    for name in AWKWARD_NAMES:
        held = cache.acquire_fenced_lock(name, 10_000)
        assert held is not None, name
        assert cache.release_lock(name, held.token) is True


def test_the_counter_expires_a_day_after_its_last_grant(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: redis.Redis
) -> None:
    cache = svc(dataclasses.replace(redis_config, key_prefix="app:"))
    held = cache.acquire_fenced_lock("job", 5000)
    assert held is not None
    counter = fence_key("app:", "job")
    assert sorted(redis_client.keys("*")) == sorted(["app:lock:job", counter])
    assert 0 < redis_client.pttl("app:lock:job") <= 5000
    assert 5000 + FENCE_KEEP_MS - 60_000 < redis_client.pttl(counter) <= 5000 + FENCE_KEEP_MS
    assert int(redis_client.get(counter)) == held.fence
    # An expired (or deleted, or evicted) counter restarts from the server clock in us: larger.
    redis_client.delete(counter)
    assert cache.release_lock("job", held.token)
    again = cache.acquire_fenced_lock("job", 5000)
    assert again is not None and again.fence > held.fence
    # A value of another type at the counter: an error before anything is written.
    assert cache.release_lock("job", again.token)
    redis_client.delete(counter)
    redis_client.hset(counter, "f", "v")
    with pytest.raises(Exception, match="WRONGTYPE"):
        cache.acquire_fenced_lock("job", 5000)
    assert redis_client.exists("app:lock:job") == 0


def test_fences_from_memory_during_an_outage(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    config = CacheConfig(
        enabled=True,
        host="127.0.0.1",
        port=private_redis.port,
        connect_timeout_ms=500,
        command_timeout_ms=500,
    )
    cache = svc(config)
    on_redis = cache.acquire_fenced_lock("job", 60_000)
    assert on_redis is not None and not on_redis.token.startswith("mem-")
    private_redis.kill()
    local = cache.acquire_fenced_lock("other", 60_000)
    # A separate sequence: the "mem-" token says the fence only compares within this process.
    assert local is not None and local.token.startswith("mem-")
    assert local.fence == 1 < on_redis.fence
    with cache.fenced_lock("third", 1000) as held:
        assert held.token.startswith("mem-") and held.fence == 2
    assert cache.release_lock("other", local.token) is True
    assert cache.stats()["fallback_locks"] == 2


# Counters another Redis client could plant: exponent and float forms, infinities, hex, padding,
# signs, integers at and past 2^53 and 2^63, another type.
PLANTED_COUNTERS = [
    "1e18", "9e99", "inf", "-inf", "nan", "0x10", " 5", "5 ", "-5", "1.5", "",
    str(2**53 - 1), str(2**53), str(2**63 - 1), str(2**64), "9" * 40,
]  # fmt: skip


@pytest.mark.parametrize("planted", PLANTED_COUNTERS)
def test_a_planted_fence_counter_fails_the_grant_loudly(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: redis.Redis, planted: str
) -> None:
    # Memory fences are a counter inside the Rust store that no client can write: Redis only.
    cache = svc(redis_config)
    counter = fence_key("", "job")
    redis_client.set(counter, planted)
    with pytest.raises(WrongTypeError, match=r"^lock 'job': WRONGTYPE fence counter is not an"):
        cache.acquire_fenced_lock("job", 5000)
    assert redis_client.exists("lock:job") == 0  # not taken
    assert redis_client.get(counter) == planted  # not changed
    assert cache.acquire_lock("job", 5000) is not None  # plain locks do not read the counter


def test_fences_stay_exact_up_to_the_counters_bound(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: redis.Redis
) -> None:
    cache = svc(redis_config)
    redis_client.set(fence_key("", "job"), str(2**53 - 3))
    fences = []
    for _ in range(2):
        held = cache.acquire_fenced_lock("job", 5000)
        assert held is not None and cache.release_lock("job", held.token)
        fences.append(held.fence)
    assert fences == [2**53 - 2, 2**53 - 1]  # exact, increasing: never rounded or repeated
    with pytest.raises(WrongTypeError, match="fence counter"):
        cache.acquire_fenced_lock("job", 5000)
