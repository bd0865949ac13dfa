"""A least-privilege ACL user (no KEYS, FLUSHDB/FLUSHALL, DEBUG, CONFIG, ACL): the service works.

The server is `acl_server` (conftest.py: `ACL_USER` with `ACL_RULES`). Every denied command is
recorded by Redis in `ACL LOG`, so an empty log after the run proves the service never needed one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from _servers import RedisServer
from _suite import exercise
from cachebolt import CacheConfig, CacheService
from conftest import ACL_PASSWORD, ACL_USER


def _config(server: RedisServer, password: str = ACL_PASSWORD) -> CacheConfig:
    return CacheConfig(
        enabled=True, host=server.host, port=server.port, username=ACL_USER, password=password
    )


@pytest.fixture
def admin(acl_server: RedisServer) -> Iterator[redis.Redis]:
    """The test side, as the default user: a clean keyspace and an empty ACL log."""
    with acl_server.client() as client:
        client.flushall()
        client.acl_log_reset()
        yield client


def test_the_user_is_really_restricted(acl_server: RedisServer, admin: redis.Redis) -> None:
    with acl_server.client(username=ACL_USER, password=ACL_PASSWORD) as client:
        assert client.ping() is True
        for command in (("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "x")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
    assert len(admin.acl_log()) == 4
    admin.acl_log_reset()


def test_the_service_runs_as_the_acl_user_with_no_denial(
    acl_server: RedisServer, admin: redis.Redis
) -> None:
    with CacheService(_config(acl_server)) as cache:
        exercise(cache, tag="acl")
    assert admin.acl_log() == []


def test_the_password_never_shows(acl_server: RedisServer, admin: redis.Redis) -> None:
    with CacheService(_config(acl_server)) as cache:
        assert ACL_PASSWORD not in repr(cache) and ACL_PASSWORD not in repr(cache.config)
        assert ACL_PASSWORD not in str(cache.stats())


def test_a_wrong_password_falls_back_to_memory(
    acl_server: RedisServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    with CacheService(_config(acl_server, password="wrong-" + "x" * 8)) as cache:
        assert cache.is_redis_available() is False
        cache.set("k", 1)
        assert cache.get("k") == 1
        assert cache.acquire_lock("job", 1_000) is not None
        assert cache.check_rate_limit("rl", 1, 60) is True
        assert cache.stats()["backend"] == "memory"
    assert admin.dbsize() == 0  # nothing reached Redis
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the failed start-up is logged"
    assert all("wrong-xxxxxxxx" not in r.getMessage() for r in caplog.records)
