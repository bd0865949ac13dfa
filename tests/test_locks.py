"""Token locks and the `lock()` context manager, on both services; task waits on the async one."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any

import pytest
from cachebolt import AsyncCacheService, LockNotAcquired
from cachebolt._core import MemoryStore
from conftest import Clock


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
