"""What the Redis backend reads from redis-py beyond its public API, and what happens without it.

The fast paths read a few things redis-py keeps privately (a connection's socket, `is_connected`
from 8.0, the asyncio cluster's startup nodes). Each test takes one of them away, as another
redis-py release might, and checks that every call still answers: a missing attribute may cost
a reset-on-close or a stale check, never a call.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from typing import Any

import pytest
import redis
import redis.asyncio
from _servers import RedisServer
from cachebolt import AsyncCacheService, CacheConfig, CacheService
from cachebolt import _redis_clients as clients


def config_for(server: RedisServer) -> CacheConfig:
    return CacheConfig(enabled=True, host=server.host, port=server.port)


def exercise(cache: CacheService) -> None:
    cache.set("k", "v")
    assert cache.get("k") == "v"
    token = cache.acquire_lock("lock", 5_000)
    assert token is not None and cache.release_lock("lock", token)
    assert cache.check_rate_limit("rl", 2, 60)


def test_no_warning_from_redis_py_on_any_client(redis_server: RedisServer) -> None:
    """Blocking and asyncio clients are built with the retry type of their flavour."""

    async def use_async() -> None:
        async with AsyncCacheService(config_for(redis_server)) as cache:
            await cache.set("a", 1)
            assert await cache.get("a") == 1

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with CacheService(config_for(redis_server)) as cache:
            exercise(cache)
        asyncio.run(use_async())


def test_without_is_connected_the_stale_check_reads_the_socket(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py before 8.0 has no `is_connected`: a killed idle connection still reconnects."""
    monkeypatch.delattr(redis.connection.AbstractConnection, "is_connected", raising=False)
    with CacheService(config_for(redis_server)) as cache:
        cache.set("k", "v")
        with redis_server.client() as admin:
            admin.client_kill_filter(_type="normal", skipme=True)
        time.sleep(0.05)  # idle past the stale-check threshold
        assert cache.get("k") == "v"
        assert cache.stats()["fallback_calls"] == 0


def test_a_failing_stale_check_never_reaches_the_caller(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def moved(conn: Any) -> bool:
        raise AttributeError("'Connection' object has no attribute '_sock'")

    with CacheService(config_for(redis_server)) as cache:
        cache.set("k", "v")
        monkeypatch.setattr(clients, "_is_connected", moved)
        time.sleep(0.05)  # idle past the stale-check threshold
        assert cache.get("k") == "v"  # the connection was dropped and made again
        assert cache.stats()["fallback_calls"] == 0


def test_without_a_reachable_socket_connections_work_and_one_warning_says_so(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(clients, "_warned", set())
    monkeypatch.setattr(clients, "_set_reset_on_close", lambda conn: clients._set_linger(None))
    with caplog.at_level(logging.WARNING, logger="cachebolt"):
        with CacheService(config_for(redis_server)) as cache:
            exercise(cache)
            assert cache.stats()["fallback_calls"] == 0
        with CacheService(config_for(redis_server)) as cache:
            assert cache.get("k") == "v"
    linger = [r for r in caplog.records if "without a reset" in r.getMessage()]
    assert len(linger) == 1


def test_asyncio_connection_without_a_writer_still_connects(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(clients, "_warned", set())
    connected: list[bool] = []

    class Connection:
        async def on_connect(self) -> None:
            connected.append(True)

    with caplog.at_level(logging.WARNING, logger="cachebolt"):
        asyncio.run(clients._async_reset_on_close(Connection()))
    assert connected == [True]
    assert any("without a reset" in r.getMessage() for r in caplog.records)


def test_an_unexpected_exception_inside_redis_py_falls_back(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An AttributeError from redis-py is an outage of the client, not the caller's problem."""

    def moved(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AttributeError("'Connection' object has no attribute '_moved'")

    with CacheService(config_for(redis_server)) as cache:
        cache.set("k", "v")
        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", moved)
        with caplog.at_level(logging.ERROR, logger="cachebolt"):
            assert cache.get("k") is None  # served by memory, which does not hold it
            cache.set("k", "m")
            assert cache.get("k") == "m"
        assert not cache.is_redis_available()
        assert any("AttributeError" in r.getMessage() for r in caplog.records)


def test_asyncio_cluster_pubsub_without_cluster_pubsub(
    redis_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis.asyncio's RedisCluster has no pubsub()/publish() before redis-py 8.0."""

    class Before8(redis.asyncio.cluster.RedisCluster):  # type: ignore[misc]
        @property
        def pubsub(self) -> Any:
            raise AttributeError("pubsub")

        @property
        def publish(self) -> Any:
            raise AttributeError("publish")

    monkeypatch.setattr(redis.asyncio.cluster, "RedisCluster", Before8)
    host, port = redis_cluster.addresses[0]
    got: list[Any] = []

    async def use() -> None:
        config = CacheConfig(enabled=True, cluster=True, host=host, port=port)
        async with AsyncCacheService(config) as cache:
            arrived = asyncio.Event()

            def callback(message: Any) -> None:
                got.append(message)
                arrived.set()

            await cache.subscribe("news", callback)
            assert await cache.publish("news", {"n": 1}) >= 1
            await asyncio.wait_for(arrived.wait(), 5)

    asyncio.run(use())
    assert got == [{"n": 1}]
