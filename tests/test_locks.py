"""Token locks and the `lock()` context manager, on both services; task waits on the async one.

Behind a proxy that forwards commands at once and replies late (`FaultProxy(reply_delay=...)`)
a cancelled or interrupted acquire whose command has run leaves no lock held.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _servers import RedisServer
from cachebolt import AsyncCacheService, CacheConfig, CacheService, LockNotAcquired
from cachebolt._core import MemoryStore
from conftest import Clock
from reliability._proxy import FaultProxy


def test_acquire_release_with_tokens(cache: Any, store: MemoryStore) -> None:
    token = cache.acquire_lock("order:create:42", 10_000)
    assert isinstance(token, str) and re.fullmatch(r"[0-9a-f]{32}", token)
    assert store.keys() == ["lock:order:create:42"]
    assert cache.acquire_lock("order:create:42", 10_000) is None
    assert cache.release_lock("order:create:42", "not-the-token") is False
    assert cache.release_lock("order:create:42", token) is True
    assert cache.release_lock("order:create:42", token) is False
    second = cache.acquire_lock("order:create:42", 10_000)
    assert second is not None and second != token


def test_lock_key_is_separate_from_the_user_key(cache: Any) -> None:
    cache.set("job", "value")
    token = cache.acquire_lock("job", 1000)
    assert token is not None
    assert cache.get("job") == "value"


def test_lock_expires(cache: Any, clock: Clock) -> None:
    token = cache.acquire_lock("l", 1000)
    clock.advance(0.999)
    assert cache.acquire_lock("l", 1000) is None
    clock.advance(0.001)
    other = cache.acquire_lock("l", 1000)
    assert other is not None
    assert cache.release_lock("l", token) is False  # an expired holder cannot release
    assert cache.release_lock("l", other) is True


def test_extend_lock_only_by_the_holder(cache: Any, clock: Clock) -> None:
    token = cache.acquire_lock("l", 1000)
    assert cache.extend_lock("l", "intruder", 5000) is False
    clock.advance(0.5)
    assert cache.extend_lock("l", token, 5000) is True
    clock.advance(4.999)
    assert cache.acquire_lock("l", 1000) is None
    clock.advance(0.001)
    assert cache.extend_lock("l", token, 5000) is False  # expired
    assert cache.extend_lock("missing", token, 5000) is False


def test_lock_context_manager_yields_the_token_and_releases(cache: Any) -> None:
    with cache.lock("report", 30_000) as token:
        assert re.fullmatch(r"[0-9a-f]{32}", token)
        assert cache.acquire_lock("report", 1000) is None
        assert cache.extend_lock("report", token, 30_000) is True
    assert cache.acquire_lock("report", 1000) is not None


def test_lock_releases_on_exception(cache: Any) -> None:
    with pytest.raises(RuntimeError, match="boom"), cache.lock("report", 30_000):
        raise RuntimeError("boom")
    assert cache.acquire_lock("report", 1000) is not None


def test_held_lock_without_wait_raises_at_once(
    cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    token = cache.acquire_lock("report", 30_000)
    started = time.monotonic()
    with pytest.raises(LockNotAcquired) as info, cache.lock("report", 30_000):
        pytest.fail("body must not run")
    assert time.monotonic() - started < 1
    assert info.value.lock_key == "report"
    assert "failed to acquire lock: report" in caplog.messages
    assert cache.release_lock("report", token) is True  # the failed attempt took nothing


def test_wait_times_out(cache: Any) -> None:
    cache.acquire_lock("report", 30_000)
    started = time.monotonic()
    with (
        pytest.raises(LockNotAcquired, match=r"after waiting 0\.2s"),
        cache.lock("report", 30_000, wait_seconds=0.2),
    ):
        pytest.fail("body must not run")
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2


def test_wait_gets_the_lock_when_released(cache: Any) -> None:
    token = cache.acquire_lock("report", 30_000)
    release = threading.Timer(0.1, cache.release_lock, args=("report", token))
    release.start()
    try:
        started = time.monotonic()
        with cache.lock("report", 30_000, wait_seconds=10) as mine:
            assert mine != token
            assert 0.05 <= time.monotonic() - started < 5
    finally:
        release.join()


def test_release_of_an_expired_lock_logs_a_warning(
    cache: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    with cache.lock("slow", 1000):
        clock.advance(2)
        assert cache.acquire_lock("slow", 60_000) is not None  # someone else took it
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'slow' was not released: it expired or changed owner" in warnings[0].getMessage()
    assert cache.acquire_lock("slow", 1000) is None  # the other owner's lock was left alone


def test_threads_exclude_each_other(sync_cache: Any) -> None:
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, overlaps
        for _ in range(20):
            with sync_cache.lock("shared", 10_000, wait_seconds=30):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.001)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == 0
    assert sync_cache.stats()["lock_acquired"] == 160


async def test_tasks_exclude_each_other(async_cache: AsyncCacheService) -> None:
    inside = 0
    overlaps = 0
    entered = 0

    async def worker() -> None:
        nonlocal inside, overlaps, entered
        for _ in range(10):
            async with async_cache.lock("shared", 10_000, wait_seconds=30):
                inside += 1
                entered += 1
                overlaps += inside > 1
                await asyncio.sleep(0.001)
                inside -= 1

    await asyncio.gather(*(worker() for _ in range(16)))
    assert overlaps == 0 and entered == 160


async def test_async_wait_does_not_block_the_loop(async_cache: AsyncCacheService) -> None:
    token = await async_cache.acquire_lock("l", 30_000)
    assert token is not None

    async def release_later() -> None:
        await asyncio.sleep(0.05)
        assert await async_cache.release_lock("l", token)

    releaser = asyncio.create_task(release_later())
    async with async_cache.lock("l", 30_000, wait_seconds=10) as mine:
        assert mine != token
    await releaser


# --- cancelled and interrupted acquires (a slow server) --------------------------------------

REPLY_DELAY = 0.3


@pytest.fixture
def slow_redis(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[CacheConfig]:
    """The config of a service on the (flushed) session server whose replies come late."""
    with FaultProxy(redis_server.port, reply_delay=REPLY_DELAY) as proxy:
        yield CacheConfig(enabled=True, host="127.0.0.1", port=proxy.port, command_timeout_ms=5000)


@pytest.mark.parametrize("fenced", [False, True])
async def test_cancelled_acquires_leave_no_lock_held(
    slow_redis: CacheConfig, redis_client: redis.Redis, fenced: bool
) -> None:
    redis_client.set("lock:held", "holder", px=60_000)
    names = [f"job:{i}" for i in range(30)]
    async with AsyncCacheService(slow_redis) as cache:
        # One pooled connection per acquire, connected now: each command goes out at once.
        await asyncio.gather(*(cache.ttl(name) for name in [*names, "held", "kept"]))
        acquire = cache.acquire_fenced_lock if fenced else cache.acquire_lock
        warm = await acquire("warm", 60_000)  # loads the scripts: the next ones run at once
        assert warm is not None
        assert await cache.release_lock("warm", warm if isinstance(warm, str) else warm.token)
        kept = asyncio.create_task(acquire("kept", 60_000))  # not cancelled: keeps its lock

        async def cancelled(name: str) -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(acquire(name, 60_000), 0.01)

        await asyncio.gather(*(cancelled(name) for name in names), cancelled("held"))
        taken = await kept
        assert cache.is_redis_available()
    assert taken is not None
    token = taken if isinstance(taken, str) else taken.token
    assert sorted(redis_client.keys("lock:*")) == ["lock:held", "lock:kept"]
    assert redis_client.get("lock:held") == "holder"  # another holder's lock is never released
    assert redis_client.get("lock:kept") == token


@pytest.mark.parametrize("fenced", [False, True])
async def test_waiters_cancelled_mid_poll_leave_no_lock_held(
    slow_redis: CacheConfig, redis_client: redis.Redis, fenced: bool
) -> None:
    names = [f"job:{i}" for i in range(20)]
    entered: list[str] = []
    async with AsyncCacheService(slow_redis) as cache:
        context = cache.fenced_lock if fenced else cache.lock
        # One pooled connection per waiter, connected now: their first attempts go out at once.
        await asyncio.gather(*(cache.ttl(name) for name in names))
        for name in names:  # held for 200 ms: each waiter's first attempt fails, then it polls
            redis_client.set(f"lock:{name}", "before", px=200)

        async def waiter(name: str) -> None:
            async with context(name, 60_000, wait_seconds=5):
                entered.append(name)

        tasks = {name: asyncio.create_task(waiter(name)) for name in names}
        waiting = set(names)
        deadline = time.monotonic() + 30
        while waiting and time.monotonic() < deadline:
            for name in list(waiting):
                # The waiter's token is in Redis, its reply still on the way: cancel it now.
                if redis_client.get(f"lock:{name}") not in (None, "before"):
                    tasks[name].cancel()
                    waiting.discard(name)
            await asyncio.sleep(0.005)
        outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert entered == [] and redis_client.keys("lock:*") == []


def test_an_interrupted_acquire_releases_its_lock(
    slow_redis: CacheConfig, redis_client: redis.Redis
) -> None:
    # A KeyboardInterrupt in the blocking service, between sending SET and reading its reply.
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with CacheService(slow_redis) as cache:
        warm = cache.acquire_lock("warm", 60_000)  # loads the scripts: the next runs at once
        assert warm is not None and cache.release_lock("warm", warm)
        previous = signal.signal(signal.SIGUSR1, interrupt)
        main = threading.main_thread().ident
        assert main is not None
        timer = threading.Timer(REPLY_DELAY / 5, signal.pthread_kill, args=(main, signal.SIGUSR1))
        try:
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                cache.acquire_lock("job", 60_000)
        finally:
            timer.join()
            signal.signal(signal.SIGUSR1, previous)
        assert cache.acquire_lock("other", 60_000) is not None  # the service still works
    assert redis_client.keys("lock:*") == ["lock:other"]
