"""`get_or_set`: one computation per key under concurrency; on failure nothing is cached."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cachebolt import AsyncCacheService, CacheConfig, CacheService, SerializationError
from conftest import Clock, ServiceFactory, wait_until

WORKERS = 32


def test_miss_computes_then_hits(cache: Any) -> None:
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return {"items": (1, 2), 3: "x"}

    expected = {"items": [1, 2], "3": "x"}
    assert cache.get_or_set("feed", 60, compute) == expected  # the JSON round trip
    assert cache.get_or_set("feed", 60, compute) == expected
    assert cache.get("feed") == expected
    assert len(calls) == 1
    stats = cache.stats()
    assert (stats["hits"], stats["misses"]) == (2, 1)


def test_ttl_then_recompute(cache: Any, clock: Clock) -> None:
    values = iter([1, 2])
    assert cache.get_or_set("k", 10, lambda: next(values)) == 1
    assert cache.ttl("k") == 10
    clock.advance(10)
    assert cache.get_or_set("k", 10, lambda: next(values)) == 2


def test_no_ttl(cache: Any) -> None:
    assert cache.get_or_set("k", None, lambda: "v") == "v"
    assert cache.ttl("k") == -1


def test_cached_none_is_a_hit(cache: Any) -> None:
    calls: list[int] = []

    def compute() -> None:
        calls.append(1)

    assert cache.get_or_set("k", 60, compute) is None
    assert cache.get_or_set("k", 60, compute) is None
    assert len(calls) == 1


def test_raising_fn_caches_nothing(cache: Any) -> None:
    def fail() -> int:
        raise LookupError("db down")

    with pytest.raises(LookupError, match="db down"):
        cache.get_or_set("k", 60, fail)
    assert cache.get("k", "absent") == "absent"
    assert cache.get_or_set("k", 60, lambda: 7) == 7


def test_unencodable_result_caches_nothing(cache: Any) -> None:
    with pytest.raises(SerializationError) as info:
        cache.get_or_set("k", 60, lambda: {1, 2})
    assert info.value.key == "k"
    assert cache.get("k", "absent") == "absent"


def test_threads_share_one_computation(sync_cache: CacheService) -> None:
    calls = 0
    barrier = threading.Barrier(WORKERS)
    results: list[Any] = []

    def slow() -> list[int]:
        nonlocal calls
        calls += 1
        time.sleep(0.3)
        return [1, 2, 3]

    def worker() -> None:
        barrier.wait()
        results.append(sync_cache.get_or_set("k", 60, slow))

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == 1
    assert results == [[1, 2, 3]] * WORKERS
    assert len({id(r) for r in results}) == WORKERS  # each caller gets its own copy


def test_threads_share_one_error(sync_cache: CacheService) -> None:
    calls = 0
    barrier = threading.Barrier(WORKERS)
    errors: list[BaseException] = []

    def slow_failure() -> int:
        nonlocal calls
        calls += 1
        time.sleep(0.3)
        raise LookupError("db down")

    def worker() -> None:
        barrier.wait()
        try:
            sync_cache.get_or_set("k", 60, slow_failure)
        except LookupError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == 1
    assert len(errors) == WORKERS and all(e is errors[0] for e in errors)
    assert sync_cache.get("k") is None


def test_different_keys_compute_independently(sync_cache: CacheService) -> None:
    assert [sync_cache.get_or_set(f"k{i}", 60, lambda i=i: i) for i in range(3)] == [0, 1, 2]


def test_sync_service_refuses_an_async_fn(sync_cache: CacheService) -> None:
    async def compute() -> int:
        return 1

    with pytest.raises(TypeError, match="AsyncCacheService"):
        sync_cache.get_or_set("k", 60, compute)
    assert sync_cache.get("k") is None


async def test_tasks_share_one_computation(async_cache: AsyncCacheService) -> None:
    calls = 0

    async def slow() -> tuple[int, ...]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return (1, 2)

    results = await asyncio.gather(*(async_cache.get_or_set("k", 60, slow) for _ in range(WORKERS)))
    assert calls == 1
    assert results == [[1, 2]] * WORKERS
    stats = await async_cache.stats()
    # Only the leader computed: every other task read a hit or took the leader's value.
    assert (stats["misses"], stats["hits"]) == (1, WORKERS - 1)


async def test_tasks_share_one_error(async_cache: AsyncCacheService) -> None:
    calls = 0

    async def slow_failure() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        raise LookupError("db down")

    results = await asyncio.gather(
        *(async_cache.get_or_set("k", 60, slow_failure) for _ in range(WORKERS)),
        return_exceptions=True,
    )
    assert calls == 1
    assert all(isinstance(r, LookupError) and r is results[0] for r in results)
    assert await async_cache.get("k") is None


async def test_async_service_accepts_a_plain_fn(async_cache: AsyncCacheService) -> None:
    assert await async_cache.get_or_set("k", 60, lambda: (1, 2)) == [1, 2]


async def test_cancelled_waiter_cancels_neither_the_computation_nor_others(
    async_cache: AsyncCacheService,
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def compute() -> str:
        started.set()
        await finish.wait()
        return "done"

    leader = asyncio.create_task(async_cache.get_or_set("k", 60, compute))
    await started.wait()
    follower = asyncio.create_task(async_cache.get_or_set("k", 60, compute))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    finish.set()
    assert await follower == "done"
    assert await async_cache.get("k") == "done"


def test_a_miss_is_one_lookup_and_one_store(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: Any
) -> None:
    # The leader looks again only when another flight landed since the caller's miss.
    cache = svc(redis_config)
    redis_client.config_resetstat()
    assert cache.get_or_set("cold", 60, lambda: 1) == 1
    stats = redis_client.info("commandstats")
    assert "cmdstat_exists" not in stats
    assert stats["cmdstat_get"]["calls"] == 1 and stats["cmdstat_set"]["calls"] == 1


COLD_CALLERS = 50


def test_threads_that_wait_for_the_computation_count_as_coalesced_hits(
    sync_cache: CacheService,
) -> None:
    flights = sync_cache._flights  # type: ignore[attr-defined]
    calls = 0

    def compute() -> str:
        nonlocal calls
        calls += 1
        # Every other caller has missed and waits for this computation.
        wait_until(lambda: flights._flights["cold"].waiters == COLD_CALLERS - 1)
        return "v"

    threads = [
        threading.Thread(target=sync_cache.get_or_set, args=("cold", 60, compute))
        for _ in range(COLD_CALLERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = sync_cache.stats()
    assert calls == 1
    assert (stats["hits"], stats["misses"], stats["coalesced"]) == (
        COLD_CALLERS - 1,
        1,
        COLD_CALLERS - 1,
    )
    assert stats["hit_rate"] == (COLD_CALLERS - 1) / COLD_CALLERS


async def _all_looked_up(
    cache: AsyncCacheService, monkeypatch: pytest.MonkeyPatch, callers: int
) -> Callable[[], Awaitable[None]]:
    """Count the service's lookups; the returned wait ends once `callers` have returned, when
    each of those callers has gone on to its single flight (no await lies between)."""
    backend = type(cache._backend)  # type: ignore[attr-defined]
    lookup = backend.lookup
    done: list[str] = []

    async def counted(self: Any, key: str) -> bytes | None:
        data: bytes | None = await lookup(self, key)
        done.append(key)
        return data

    monkeypatch.setattr(backend, "lookup", counted)

    async def wait() -> None:
        while len(done) < callers:
            await asyncio.sleep(0.01)

    return lambda: asyncio.wait_for(wait(), 5)


async def test_tasks_that_wait_for_the_computation_count_as_coalesced_hits(
    async_cache: AsyncCacheService, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_looked_up = await _all_looked_up(async_cache, monkeypatch, COLD_CALLERS)
    release = asyncio.Event()

    async def compute() -> str:
        await release.wait()
        return "v"

    tasks = [
        asyncio.ensure_future(async_cache.get_or_set("cold", 60, compute))
        for _ in range(COLD_CALLERS)
    ]
    await all_looked_up()
    release.set()
    assert await asyncio.gather(*tasks) == ["v"] * COLD_CALLERS
    stats = await async_cache.stats()
    assert (stats["hits"], stats["misses"], stats["coalesced"]) == (
        COLD_CALLERS - 1,
        1,
        COLD_CALLERS - 1,
    )


async def test_waiters_of_a_failed_computation_stay_misses(
    async_cache: AsyncCacheService, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_looked_up = await _all_looked_up(async_cache, monkeypatch, 3)
    release = asyncio.Event()

    async def fail() -> str:
        await release.wait()
        raise LookupError("db down")

    tasks = [asyncio.ensure_future(async_cache.get_or_set("cold", 60, fail)) for _ in range(3)]
    await all_looked_up()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    stats = await async_cache.stats()
    assert (stats["hits"], stats["misses"], stats["coalesced"]) == (0, 3, 0)


def test_counters_never_go_down_while_callers_wait(sync_cache: CacheService) -> None:
    # Prometheus reads a counter that goes down as a restart: sample every counter while
    # callers wait for one computation, and after.
    flights = sync_cache._flights  # type: ignore[attr-defined]
    samples: list[tuple[int, int, int]] = []

    def sample() -> None:
        stats = sync_cache.stats()
        samples.append((stats["hits"], stats["misses"], stats["coalesced"]))

    def compute() -> str:
        wait_until(lambda: flights._flights["cold"].waiters == 3)
        sample()
        return "v"

    threads = [
        threading.Thread(target=sync_cache.get_or_set, args=("cold", 60, compute)) for _ in range(4)
    ]
    sample()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sample()
    for column in zip(*samples, strict=True):
        assert list(column) == sorted(column)
    assert samples[-1] == (3, 1, 3)
