"""Per-call outage policies, `LockLost`, `VALKEY_REQUIRED`, and the causes of `BackendUnavailable`.

Lock-loss tests run on every backend (`cache`: sync and asyncio x memory, Redis, cluster). Tests
that break Redis own a private server (`private_redis`, killed or paused) and run on both
services (`svc`). Waits are bounded polls, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from _servers import RedisServer, TLSFiles, free_port
from _web import Harness
from cachebolt import (
    AsyncCacheService,
    BackendUnavailable,
    CacheConfig,
    CacheService,
    LockLost,
    LockNotAcquired,
)
from conftest import ACL_PASSWORD, ACL_USER, Clock, ServiceFactory
from test_fallback import config_for
from test_fastapi import harness  # noqa: F401 (the fixture: both services on every backend)

LOCK_POLICY = ValueError("fallback must be one of 'memory', 'fail_closed', got 'bogus'")
RATE_POLICY = ValueError(
    "fallback must be one of 'memory', 'fail_closed', 'fail_open', got 'bogus'"
)


# --- LockLost ------------------------------------------------------------------------------------


def test_a_lock_block_that_outlives_its_ttl_raises_lock_lost(cache: Any, clock: Clock) -> None:
    lost_slow = pytest.raises(LockLost, match="'slow' was lost before its release")
    with lost_slow as lost, cache.lock("slow", 1000):
        clock.advance(2)
        assert cache.acquire_lock("slow", 60_000) is not None  # someone else took it
    assert lost.value.lock_key == "slow"
    assert cache.acquire_lock("slow", 1000) is None  # the other holder's lock was left alone
    with pytest.raises(LockLost), cache.fenced_lock("fenced", 1000):
        clock.advance(2)


def test_lock_lost_never_hides_the_error_of_the_body(
    cache: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    with pytest.raises(KeyError), cache.lock("slow", 1000):
        clock.advance(2)
        raise KeyError("the body's own error")
    assert "'slow' was lost before its release" in caplog.text


def test_a_lock_released_in_time_raises_nothing(cache: Any) -> None:
    with cache.lock("quick", 60_000, on_lost="raise") as token:
        assert token
    assert cache.acquire_lock("quick", 1000) is not None


def test_with_lock_raises_or_warns_when_the_lock_was_lost(
    cache: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    @cache.with_lock("job:{n}", ttl_ms=1000)
    def slow(n: int) -> int:
        clock.advance(2)
        return n

    @cache.with_lock("job:{n}", ttl_ms=1000, on_lost="warn")
    def tolerant(n: int) -> int:
        clock.advance(2)
        return n

    with pytest.raises(LockLost):
        slow(1)
    caplog.set_level(logging.WARNING, logger="cachebolt")
    assert tolerant(2) == 2
    assert "'job:2' was lost before its release" in caplog.text


def test_blocking_with_lock_on_a_coroutine_raises_lock_lost(sync_cache: Any, clock: Clock) -> None:
    @sync_cache.with_lock("job", ttl_ms=1000)
    async def slow() -> None:
        clock.advance(2)

    with pytest.raises(LockLost):
        asyncio.run(slow())


# --- bad arguments: the same error in every mode -------------------------------------------------


def _policy_errors(cache: Any) -> list[str]:
    """The message of every call with a bad `fallback=` / `on_lost=`; nothing may change."""
    calls = [
        lambda: cache.acquire_lock("k", 1000, fallback="bogus"),
        lambda: cache.acquire_fenced_lock("k", 1000, fallback="bogus"),
        lambda: cache.lock("k", 1000, fallback="bogus").__enter__(),
        lambda: cache.fenced_lock("k", 1000, fallback="bogus").__enter__(),
        lambda: cache.lock("k", 1000, on_lost="bogus").__enter__(),
        lambda: cache.with_lock("k", ttl_ms=1000, fallback="bogus"),
        lambda: cache.with_lock("k", ttl_ms=1000, on_lost="bogus"),
        lambda: cache.check_rate_limit("r", 5, 60, fallback="bogus"),
        lambda: cache.hit_rate_limit("r", 5, 60, fallback="bogus"),
        lambda: cache.rate_limited(limit=5, window_seconds=60, fallback="bogus"),
    ]
    messages = []
    for call in calls:
        with pytest.raises(ValueError) as raised:
            call()
        messages.append(str(raised.value))
    assert cache.acquire_lock("k", 1000) is not None  # no bad call took the lock
    assert cache.hit_rate_limit("r", 5, 60).remaining == 4  # nor counted a hit
    return messages


def test_bad_policies_raise_the_same_error_in_memory_redis_and_fallback(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    expected = [str(LOCK_POLICY)] * 4 + [
        "on_lost must be one of 'raise', 'warn', got 'bogus'",
        str(LOCK_POLICY),
        "on_lost must be one of 'raise', 'warn', got 'bogus'",
        str(RATE_POLICY),
        str(RATE_POLICY),
        str(RATE_POLICY),
    ]
    assert _policy_errors(svc(CacheConfig())) == expected
    on_redis = svc(config_for(private_redis.port))
    assert _policy_errors(on_redis) == expected
    assert on_redis.is_redis_available()
    on_redis.reset()
    private_redis.kill()
    assert _policy_errors(on_redis) == expected
    assert not on_redis.is_redis_available()


# --- per-call outage policies with Redis down ----------------------------------------------------


def test_per_call_lock_policy_overrides_the_configured_one(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port))  # CACHE_LOCK_FALLBACK=memory (the default)
    held = cache.acquire_lock("held", 60_000)
    assert held is not None
    # Up: a lock held by someone else stays None / LockNotAcquired under every policy.
    assert cache.acquire_lock("held", 1000, fallback="fail_closed") is None
    with pytest.raises(LockNotAcquired), cache.lock("held", 1000, fallback="fail_closed"):
        pass

    private_redis.kill()
    assert cache.acquire_lock("job", 1000, fallback="fail_closed") is None
    assert cache.acquire_fenced_lock("job", 1000, fallback="fail_closed") is None
    refused = r"not taken \(fallback='fail_closed'\): Redis unavailable"
    for manager in (cache.lock, cache.fenced_lock):
        with (
            pytest.raises(BackendUnavailable, match=refused),
            manager("job", 1000, fallback="fail_closed"),
        ):
            pass
    with pytest.raises(BackendUnavailable), cache.lock("job", 1000, fallback="fail_closed"):
        pass
    # The configured policy still serves the other calls from memory.
    token = cache.acquire_lock("job", 1000)
    assert token is not None and token.startswith("mem-")
    assert cache.release_lock("job", token)
    with cache.lock("job", 1000, fallback="memory") as token:
        assert token.startswith("mem-")
    stats = cache.stats()
    assert stats["fallback_locks"] == 2 and stats["lock_contended"] >= 5


def test_per_call_memory_lock_under_a_fail_closed_configuration(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port, lock_fallback="fail_closed"))
    private_redis.kill()
    with pytest.raises(BackendUnavailable):
        cache.lock("job", 1000).__enter__()
    token = cache.acquire_lock("job", 1000, fallback="memory")
    assert token is not None and token.startswith("mem-")
    fenced = cache.acquire_fenced_lock("other", 1000, fallback="memory")
    assert fenced is not None and fenced.token.startswith("mem-")
    with pytest.raises(LockNotAcquired), cache.lock("job", 1000, fallback="memory"):
        pass  # memory still excludes within the process


def test_a_fail_closed_lock_waits_for_redis_to_return(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port))
    private_redis.kill()
    assert cache.acquire_lock("warmup", 1000, fallback="fail_closed") is None  # breaker open
    private_redis.restart()
    with cache.lock("job", 1000, wait_seconds=10, fallback="fail_closed") as token:
        assert not token.startswith("mem-")  # taken in Redis once it answered


def test_per_call_rate_limit_policies(svc: ServiceFactory, private_redis: RedisServer) -> None:
    cache = svc(config_for(private_redis.port, rate_limit_fallback="fail_closed"))
    private_redis.kill()
    assert cache.check_rate_limit("r", 10, 60) is False  # the configured policy
    assert cache.check_rate_limit("r", 10, 60, fallback="fail_open") is True
    result = cache.hit_rate_limit("r", 1, 60, cost=1, fallback="fail_open")
    assert result and result.remaining == 0
    assert [cache.check_rate_limit("m", 2, 60, fallback="memory") for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert not cache.hit_rate_limit("m", 2, 60, fallback="memory")  # counted in memory
    denied = cache.hit_rate_limit("r", 10, 60, fallback="fail_closed")
    assert not denied and 0 < denied.retry_after <= 2.0

    open_cache = svc(config_for(private_redis.port, key_prefix="fb2:"))  # memory by default
    assert open_cache.check_rate_limit("x", 10, 60, fallback="fail_closed") is False
    assert not open_cache.hit_rate_limit("x", 10, 60, fallback="fail_closed")
    assert open_cache.check_rate_limit("x", 10, 60) is True


def test_decorators_pass_the_policy_through(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port, rate_limit_fallback="fail_closed"))
    calls: list[int] = []

    @cache.with_lock("pay:{order}", ttl_ms=5000, fallback="fail_closed")
    def pay(order: int) -> int:
        calls.append(order)
        return order

    @cache.rate_limited(limit=1, window_seconds=60, key="u:{user}", fallback="fail_open")
    def hit(user: int) -> int:
        return user

    assert pay(1) == 1
    private_redis.kill()
    with pytest.raises(BackendUnavailable, match="fail_closed"):
        pay(2)
    assert calls == [1]  # the payment never ran without a shared lock
    assert [hit(7) for _ in range(3)] == [7, 7, 7]


# --- VALKEY_REQUIRED -----------------------------------------------------------------------------


def test_required_parses_strictly() -> None:
    assert CacheConfig.from_env({"VALKEY_REQUIRED": "true"}).required is True
    assert CacheConfig.from_env({}).required is False
    with pytest.raises(ValueError, match="VALKEY_REQUIRED"):
        CacheConfig.from_env({"VALKEY_REQUIRED": "maybe"})


def _refusal(config: CacheConfig, flavour: str) -> str:
    """The message the service raises at start-up under `required` (constructor, connect, and
    the asyncio service's first call)."""
    if flavour == "sync":
        with pytest.raises(BackendUnavailable) as raised:
            CacheService(config)
        return str(raised.value)

    async def start() -> str:
        service = AsyncCacheService(config)
        with pytest.raises(BackendUnavailable) as raised:
            await service.connect()
        with pytest.raises(BackendUnavailable) as again:
            await service.get("k")  # the first call tries again, and raises again
        assert str(again.value).split(":")[:2] == str(raised.value).split(":")[:2]
        await service.close()
        return str(raised.value)

    return asyncio.run(start())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_required_refused_port(flavour: str) -> None:
    message = _refusal(config_for(free_port(), required=True), flavour)
    assert message.startswith("Redis unavailable: connection refused: ")


def test_required_timeout(flavour: str, private_redis: RedisServer) -> None:
    private_redis.pause()  # accepts the connection, never answers
    try:
        message = _refusal(config_for(private_redis.port, required=True), flavour)
    finally:
        private_redis.resume()
    assert message.startswith("Redis unavailable: timeout: ")


def test_required_wrong_password_names_the_user_not_the_password(
    flavour: str, acl_server: RedisServer
) -> None:
    config = config_for(acl_server.port, required=True, username=ACL_USER, password="wr0ng-pw")
    message = _refusal(config, flavour)
    assert message.startswith(f"Redis unavailable: authentication failed for user '{ACL_USER}': ")
    assert "wr0ng-pw" not in message and ACL_PASSWORD not in message


def test_required_missing_credentials(flavour: str, tmp_path: Path) -> None:
    with RedisServer(tmp_path / "auth", password="s3cret-pw") as server:
        message = _refusal(config_for(server.port, required=True), flavour)
    assert message.startswith(
        "Redis unavailable: authentication failed for user 'default' (no password configured): "
    )
    assert "HELLO" in message  # the server's own words follow the cause


def test_required_tls_wrong_ca(
    flavour: str, tls_server: RedisServer, tls_files: tuple[TLSFiles, TLSFiles]
) -> None:
    wrong_ca = str(tls_files[1].ca_cert)
    config = config_for(tls_server.port, required=True, tls=True, tls_ca_cert=wrong_ca)
    message = _refusal(config, flavour)
    assert message.startswith("Redis unavailable: TLS verification failed: ")


def test_required_connects_when_redis_answers_and_later_outages_fall_back(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    cache = svc(config_for(private_redis.port, required=True))
    cache.set("k", 1)
    assert cache.is_redis_available()
    private_redis.kill()
    assert cache.get("k") is None  # served from memory: run-time outages still fall back
    cache.set("k", 2)
    assert cache.get("k") == 2 and not cache.is_redis_available()


def test_required_is_ignored_in_memory_mode() -> None:
    with CacheService(CacheConfig(required=True)) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1


# --- FastAPI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("service_class", [CacheService, AsyncCacheService])
def test_with_lock_fail_closed_answers_503_with_retry_after(
    service_class: type, private_redis: RedisServer
) -> None:
    from cachebolt.fastapi import RateLimit, WithLock
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    cache = service_class(config_for(private_redis.port))
    app = FastAPI()
    app.state.cachebolt = cache
    lock = WithLock("pay", 10_000, key="{order_id}", fallback="fail_closed")

    @app.post("/pay/{order_id}", dependencies=[Depends(lock)])
    def pay(order_id: int) -> int:
        return order_id

    @app.get("/open", dependencies=[Depends(RateLimit(1, 60, fallback="fail_open"))])
    def open_route() -> str:
        return "ok"

    with TestClient(app) as client:
        assert client.post("/pay/1").status_code == 200
        held = client.portal.call(_take, cache, "pay:2")
        assert client.post("/pay/2").status_code == 409  # held by someone else
        assert held is not None
        private_redis.kill()
        refused = client.post("/pay/3")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "2"
        assert refused.json()["detail"]["error"] == "lock_unavailable"
        assert [client.get("/open").status_code for _ in range(3)] == [200, 200, 200]
        client.portal.call(_close, cache)


async def _take(cache: Any, key: str) -> Any:
    taken = cache.acquire_lock(key, 60_000)
    return await taken if asyncio.iscoroutine(taken) else taken


async def _close(cache: Any) -> None:
    closed = cache.close()
    if asyncio.iscoroutine(closed):
        await closed


def test_with_lock_dependency_raises_lock_lost_or_warns(
    harness: Harness,  # noqa: F811 (the fixture imported from test_fastapi)
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler whose lock was taken by another holder before the release: `on_lost="raise"`
    turns the response into a 500 under `scope="function"`; "warn" answers 200 and logs."""
    from cachebolt.fastapi import WithLock
    from fastapi import Depends

    strict = WithLock("pay", 10_000, key="{order_id}")
    tolerant = WithLock("pay", 10_000, key="{order_id}", on_lost="warn")

    def lose(order_id: str, token: str) -> str:
        assert harness.call("release_lock", f"pay:{order_id}", token)
        assert harness.call("acquire_lock", f"pay:{order_id}", 60_000) is not None  # another
        return order_id

    @harness.app.post("/strict/{order_id}")
    def pay_strict(order_id: str, token: str = Depends(strict, scope="function")) -> str:
        return lose(order_id, token)

    @harness.app.post("/tolerant/{order_id}")
    def pay_tolerant(order_id: str, token: str = Depends(tolerant, scope="function")) -> str:
        return lose(order_id, token)

    client = harness.start()
    caplog.set_level(logging.WARNING, logger="cachebolt")
    assert client.post("/strict/1").status_code == 500
    assert client.post("/tolerant/2").status_code == 200
    assert "'pay:2' was lost before its release" in caplog.text
    assert client.post("/strict/1").status_code == 409  # the other holder's lock was kept
