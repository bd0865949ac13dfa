"""Fallback and recovery on a real redis-server: start-up refused, the breaker, policies, tokens.

Each test that breaks Redis owns a private server (`private_redis`, or a `RedisServer` started
on a port that was refused first). Both services run the same bodies (`svc` builds a
`CacheService` or an `AsyncCacheService` behind `SyncProxy`). Waits are bounded polls, never
fixed sleeps.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from _servers import RedisServer, free_port
from cachebolt import (
    AsyncCacheService,
    BackendUnavailable,
    CacheConfig,
    CacheService,
    ConfigError,
)
from cachebolt._breaker import CircuitBreaker
from conftest import ServiceFactory, wait_until

RECOVERY_BOUND = 5.0  # seconds: the promised "back on Redis within 5 s"


def config_for(port: int, **overrides: Any) -> CacheConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "connect_timeout_ms": 500,
        "command_timeout_ms": 500,
        "key_prefix": "fb:",
    }
    values.update(overrides)
    return CacheConfig(**values)


def records(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and text in r.getMessage()]


# --- the breaker alone (no I/O, a manual clock) --------------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_transitions_are_reported_once() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(initial=0.1, maximum=2.0, clock=clock, jitter=lambda: 1.0)
    assert breaker.state == "closed" and breaker.closed
    assert breaker.trip() is True
    assert breaker.trip() is False  # a second failing caller does not transition again
    assert breaker.state == "open" and breaker.outages == 1
    clock.now += 3
    assert breaker.open_seconds() == 3
    assert breaker.probe_started() is True
    assert breaker.probe_started() is False
    assert breaker.state == "half_open"
    breaker.probe_failed()
    assert breaker.state == "open"
    assert breaker.reset() is True
    assert breaker.reset() is False
    assert breaker.state == "closed" and breaker.open_seconds() == 0.0


def test_breaker_probe_backoff_doubles_jittered_and_capped() -> None:
    jitter = iter([1.0] * 8 + [0.0, 0.0])
    breaker = CircuitBreaker(initial=0.1, maximum=1.0, jitter=lambda: next(jitter))
    breaker.trip()
    delays = []
    for _ in range(8):
        delays.append(breaker.next_probe_delay())
        breaker.probe_started()
        breaker.probe_failed()
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0])
    assert breaker.next_probe_delay() == pytest.approx(0.5)  # jitter 0 -> half the step
    breaker.reset()
    breaker.trip()
    assert breaker.next_probe_delay() == pytest.approx(0.05)  # a new outage starts over


def test_breaker_refuses_a_bad_backoff() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(initial=0, maximum=1)
    with pytest.raises(ValueError):
        CircuitBreaker(initial=2, maximum=1)


# --- configuration -------------------------------------------------------------------------------


def test_policy_variables_parse_strictly() -> None:
    config = CacheConfig.from_env(
        {"CACHE_LOCK_FALLBACK": "Fail_Closed", "CACHE_RATE_LIMIT_FALLBACK": " fail_open "}
    )
    assert config.lock_fallback == "fail_closed"
    assert config.rate_limit_fallback == "fail_open"
    assert CacheConfig.from_env({}).lock_fallback == "memory"
    with pytest.raises(ConfigError, match="CACHE_LOCK_FALLBACK='fail_open'"):
        CacheConfig.from_env({"CACHE_LOCK_FALLBACK": "fail_open"})  # locks cannot fail open
    with pytest.raises(ConfigError, match="CACHE_RATE_LIMIT_FALLBACK"):
        CacheConfig.from_env({"CACHE_RATE_LIMIT_FALLBACK": "allow"})
    with pytest.raises(ConfigError, match=r"CacheConfig\.rate_limit_fallback"):
        CacheConfig(rate_limit_fallback="nope")


def test_memory_mode_reports_no_breaker() -> None:
    with CacheService() as cache:
        stats = cache.stats()
    assert stats["breaker_state"] == "disabled" and stats["fallback_calls"] == 0


# --- start-up ------------------------------------------------------------------------------------


def test_refused_at_start_up_serves_memory_then_switches_to_redis(
    svc: ServiceFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    port = free_port()
    started = time.monotonic()
    cache = svc(config_for(port))
    cache.set("k", "from memory")  # the first call connects (async) and falls back at once
    assert time.monotonic() - started < 1.0
    assert cache.get("k") == "from memory"
    assert cache.is_redis_available() is False
    stats = cache.stats()
    assert stats["backend"] == "memory" and stats["redis_available"] is False
    assert stats["breaker_state"] in ("open", "half_open")
    assert stats["fallback_calls"] >= 2
    assert len(records(caplog, logging.ERROR, "Redis unavailable at start-up")) == 1

    with RedisServer(tmp_path / "late", port=port) as server:
        took = wait_until(cache.is_redis_available)
        cache.set("k", "from redis")
        with server.client() as raw:
            assert raw.get("fb:k") == '"from redis"'
        assert cache.stats()["backend"] == "redis"
        assert cache.stats()["breaker_state"] == "closed"
        cache.close()  # before the server stops: no outage logged on the way out
    assert took < RECOVERY_BOUND
    assert len(records(caplog, logging.INFO, "Redis answers again")) == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_wrong_password_falls_back_and_logs_no_secret(
    svc: ServiceFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    with RedisServer(tmp_path / "auth", password="right-one") as server:
        cache = svc(config_for(server.port, password="wr0ng-s3cret"))
        assert cache.incr("n") == 1
        assert cache.is_redis_available() is False
        assert cache.get_client() is not None
    assert len(records(caplog, logging.ERROR, "Redis unavailable")) == 1
    assert "wr0ng-s3cret" not in caplog.text


def test_async_service_connects_in_async_with(redis_server: RedisServer) -> None:
    import asyncio

    async def main() -> tuple[str, bool, str]:
        service = AsyncCacheService(config_for(redis_server.port, key_prefix="aw:"))
        before = (await service.stats())["breaker_state"]
        async with service:
            return before, service.is_redis_available(), (await service.stats())["backend"]

    before, available, backend = asyncio.run(main())
    assert (available, backend) == (True, "redis")
    assert before in ("connecting", "closed")


# --- run time: the breaker -----------------------------------------------------------------------


def test_outage_opens_once_and_recovery_closes_once(
    svc: ServiceFactory, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    cache = svc(config_for(private_redis.port))
    cache.set("k", 1)
    assert cache.is_redis_available() is True
    assert cache.stats()["backend"] == "redis"

    private_redis.kill()
    for i in range(50):  # many calls, one transition
        cache.set(f"k{i}", i)
        assert cache.get(f"k{i}") == i
    assert cache.is_redis_available() is False
    stats = cache.stats()
    assert stats["backend"] == "memory" and stats["breaker_state"] in ("open", "half_open")
    assert stats["fallback_calls"] >= 100

    private_redis.restart()
    took = wait_until(cache.is_redis_available)
    assert took < RECOVERY_BOUND
    assert cache.get("k") is None  # the restarted server is empty (nothing persisted)
    cache.set("k", 2)
    assert cache.get("k") == 2
    assert cache.stats()["backend"] == "redis"
    assert len(records(caplog, logging.ERROR, "Redis unavailable")) == 1
    assert len(records(caplog, logging.INFO, "Redis answers again")) == 1


def test_recovery_drops_outage_data_but_keeps_held_locks(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port))
    private_redis.kill()
    cache.set("stale", "outage value")
    token = cache.acquire_lock("job", 60_000)
    assert token is not None and token.startswith("mem-")
    private_redis.restart()
    wait_until(cache.is_redis_available)
    private_redis.kill()  # the next outage must not serve the previous one's data
    assert cache.get("stale") is None
    assert cache.acquire_lock("job", 60_000) is None  # still held in memory
    assert cache.release_lock("job", token) is True


# --- policies ------------------------------------------------------------------------------------


def test_memory_policy_serves_locks_and_limits_locally_with_one_warning(
    svc: ServiceFactory, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    cache = svc(config_for(private_redis.port))
    private_redis.kill()
    tokens = [cache.acquire_lock(f"l{i}", 10_000) for i in range(3)]
    assert all(t is not None for t in tokens)
    assert cache.acquire_lock("l0", 10_000) is None  # memory still excludes within the process
    assert [cache.check_rate_limit("r", 2, 60) for _ in range(3)] == [True, True, False]
    stats = cache.stats()
    assert stats["fallback_locks"] == 3 and stats["fallback_rate_limits"] == 3
    assert stats["lock_acquired"] == 3 and stats["lock_contended"] == 1
    assert stats["rate_limit_allowed"] == 2 and stats["rate_limit_denied"] == 1
    assert len(records(caplog, logging.WARNING, "locks are now taken in this process")) == 1
    assert len(records(caplog, logging.WARNING, "rate limits are now taken in this process")) == 1


def test_fail_closed_policies(svc: ServiceFactory, private_redis: RedisServer) -> None:
    config = config_for(
        private_redis.port, lock_fallback="fail_closed", rate_limit_fallback="fail_closed"
    )
    cache = svc(config)
    private_redis.kill()
    assert cache.acquire_lock("job", 1000) is None
    with pytest.raises(BackendUnavailable, match="fail_closed"), cache.lock("job", 1000):
        pass
    assert cache.check_rate_limit("r", 10, 60) is False
    result = cache.hit_rate_limit("r", 10, 60)
    assert not result and 0 < result.retry_after <= 2.0 and result.remaining == 0
    with pytest.raises(ValueError):
        cache.acquire_lock("job", 0)  # bad arguments still raise under every policy
    with pytest.raises(ValueError):
        cache.hit_rate_limit("r", 0, 60)
    stats = cache.stats()
    assert stats["fallback_locks"] == 0 and stats["fallback_rate_limits"] == 0
    assert stats["rate_limit_denied"] == 2
    assert cache.get("x") is None  # values are still served from memory
    cache.set("x", 1)
    assert cache.get("x") == 1


def test_fail_open_rate_limits(svc: ServiceFactory, private_redis: RedisServer) -> None:
    cache = svc(config_for(private_redis.port, rate_limit_fallback="fail_open"))
    private_redis.kill()
    assert all(cache.check_rate_limit("r", 1, 60) for _ in range(5))
    result = cache.hit_rate_limit("r", 3, 60, cost=2)
    assert result and result.remaining == 1 and result.retry_after == 0.0
    assert not cache.hit_rate_limit("r", 3, 60, cost=4)  # above the limit: denied by any policy
    assert cache.stats()["rate_limit_allowed"] == 6


# --- tokens go back to their issuer --------------------------------------------------------------


def test_tokens_go_back_to_the_backend_that_issued_them(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port))
    redis_token = cache.acquire_lock("before", 60_000)
    assert redis_token is not None and not redis_token.startswith("mem-")

    private_redis.pause()  # frozen: the lock stays in Redis
    # This call times out and opens the breaker (a write would still run when Redis resumes).
    assert cache.get("anything") is None
    memory_token = cache.acquire_lock("during", 60_000)
    assert memory_token is not None and memory_token.startswith("mem-")
    # A Redis token is never checked against memory: while Redis is down it answers False.
    assert cache.release_lock("before", redis_token) is False
    assert cache.extend_lock("before", redis_token, 60_000) is False
    assert cache.acquire_lock("before", 60_000) is not None  # memory knows nothing of it
    private_redis.resume()
    wait_until(cache.is_redis_available)

    # Back on Redis: the memory token still goes to memory, the Redis token to Redis.
    assert cache.extend_lock("during", memory_token, 60_000) is True
    assert cache.acquire_lock("during", 60_000) is not None  # Redis never saw "during"
    assert cache.release_lock("during", memory_token) is True
    assert cache.release_lock("during", memory_token) is False
    assert cache.release_lock("before", redis_token) is True
    with private_redis.client() as raw:
        assert raw.exists("fb:lock:before") == 0
    assert cache.release_lock("before", "mem-" + redis_token) is False  # forged tag: memory


def test_lock_context_manager_across_an_outage(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port))
    private_redis.kill()
    with cache.lock("job", 60_000) as token:
        assert token.startswith("mem-")
        private_redis.restart()
        wait_until(cache.is_redis_available)
    assert cache.acquire_lock("job", 1000) is not None  # released in memory, free in Redis


def test_a_write_to_memory_racing_the_recovery_is_not_read_in_the_next_outage(
    private_redis: RedisServer,
) -> None:
    """A call that chose memory before Redis came back and wrote after memory was emptied: the
    next outage must not read that value back (the chaos run's rare stale read, made certain)."""
    cache = CacheService(config_for(private_redis.port))
    fallback = cache._fallback
    assert fallback is not None
    try:
        private_redis.kill()
        cache.set("k", "first outage")  # trips the breaker: memory serves from here on
        assert cache.is_redis_available() is False
        private_redis.restart()
        memory = fallback._memory

        class RecoveringBeforeTheWrite:
            """The memory store, but Redis comes back between a set's choice and its write."""

            def __getattr__(self, name: str) -> Any:
                return getattr(memory, name)

            def set(self, *args: Any) -> None:
                fallback._recovered()  # the probe's work, at the worst time
                memory.set(*args)

        fallback._memory = RecoveringBeforeTheWrite()  # type: ignore[assignment]
        cache.set("k", "straggler")  # chose memory; Redis came back and memory was emptied
        fallback._memory = memory
        assert cache.is_redis_available() is True
        private_redis.kill()  # the next outage
        assert cache.get("k") is None
    finally:
        cache.close()
