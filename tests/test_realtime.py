"""Time-dependent behaviour in real time, on every backend: what the manual clock cannot reach on
Redis (the rate-limit scripts read the server's `TIME`) and real expiry on the server.

Windows and TTLs are a few hundred milliseconds, so the module takes about two seconds. Every
bound is one-sided where scheduling could only delay us.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cachebolt import CacheConfig, CacheService, RateLimitExceeded

ALGORITHMS = ["sliding_log", "fixed_window", "sliding_counter"]


@pytest.fixture
def rt_cache(request: pytest.FixtureRequest, backend: str) -> Iterator[CacheService]:
    """A service on the real clock: a fresh memory store, or the (flushed) server or cluster."""
    if backend == "memory":
        service = CacheService()
    else:
        config: CacheConfig = request.getfixturevalue(f"{backend}_config")
        service = CacheService(config)
        assert service.is_redis_available()
    with service:
        yield service


def _within(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_sliding_log_frees_the_oldest_hit_after_the_window(rt_cache: CacheService) -> None:
    assert rt_cache.check_rate_limit("otp", 2, 0.5) is True
    assert rt_cache.check_rate_limit("otp", 2, 0.5) is True
    denied = rt_cache.hit_rate_limit("otp", 2, 0.5)
    assert not denied and denied.remaining == 0
    assert 0 < denied.retry_after <= 0.5 and 0 < denied.reset_after <= 0.5
    time.sleep(denied.retry_after + 0.02)
    assert rt_cache.check_rate_limit("otp", 2, 0.5) is True


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_admits_again_after_the_window(
    rt_cache: CacheService, algorithm: str
) -> None:
    # Fixed windows are aligned to the clock: three quick hits may straddle a window edge, which
    # admits the third. Such a run is retried on a fresh key; one of five must stay in a window.
    for attempt in range(5):
        key = f"a{attempt}"
        got = [rt_cache.hit_rate_limit(key, 2, 0.3, algorithm=algorithm).allowed for _ in range(3)]
        if got == [True, True, False]:
            break
        assert algorithm != "sliding_log" and got == [True, True, True], got
    else:
        pytest.fail("every run straddled a window edge")
    denied = rt_cache.hit_rate_limit(key, 2, 0.3, algorithm=algorithm)
    if denied:  # the window ended just now
        return
    assert 0 < denied.retry_after <= 0.6  # sliding_counter may wait for the previous window too
    time.sleep(denied.retry_after + 0.02)
    assert rt_cache.hit_rate_limit(key, 2, 0.3, algorithm=algorithm).allowed


def test_rate_limited_decorator_reports_retry_after(rt_cache: CacheService) -> None:
    @rt_cache.rate_limited(limit=1, window_seconds=0.4, key="user:{user_id}")
    def act(user_id: int) -> int:
        return user_id

    assert act(1) == 1
    with pytest.raises(RateLimitExceeded) as info:
        act(1)
    assert 0 < info.value.retry_after <= 0.4
    time.sleep(info.value.retry_after + 0.02)
    assert act(1) == 1


def test_values_expire_on_their_own(rt_cache: CacheService) -> None:
    rt_cache.set("k", "v", ttl=0.2)
    rt_cache.sadd("s", "m")
    assert rt_cache.expire("s", 0.2) is True
    assert rt_cache.get("k") == "v" and rt_cache.ttl("k") in (0, 1)
    assert _within(2, lambda: rt_cache.get("k") is None and rt_cache.scard("s") == 0)
    assert rt_cache.ttl("k") == -2


def test_locks_expire_on_their_own(rt_cache: CacheService) -> None:
    token = rt_cache.acquire_lock("job", 200)
    assert token is not None
    assert rt_cache.acquire_lock("job", 200) is None
    assert rt_cache.extend_lock("job", token, 300) is True
    other: list[Any] = []
    assert _within(2, lambda: other.append(rt_cache.acquire_lock("job", 10_000)) or other[-1])
    assert rt_cache.release_lock("job", token) is False  # an expired holder cannot release
    assert rt_cache.release_lock("job", other[-1]) is True
