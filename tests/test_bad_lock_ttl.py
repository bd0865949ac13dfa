"""A bad lock TTL gets the same exception type and message in memory mode, Redis mode and
during fallback, and takes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from _servers import RedisServer
from cachebolt import CacheConfig, CacheService
from test_fallback import config_for

BAD_TTLS: list[tuple[Any, type[Exception], str]] = [
    (10.5, TypeError, "ttl_ms must be an int, not float"),
    ("10", TypeError, "ttl_ms must be an int, not str"),
    (True, TypeError, "ttl_ms must be a number, not bool"),
    (None, TypeError, "ttl_ms must be an int, not NoneType"),
    (0, ValueError, "ttl_ms must be a positive number of milliseconds, got 0"),
    (-5, ValueError, "ttl_ms must be a positive number of milliseconds, got -5"),
    (1 << 48, ValueError, f"ttl_ms must be a positive number of milliseconds, got {1 << 48}"),
    (1 << 70, ValueError, f"ttl_ms is out of the 64-bit range, got {1 << 70}"),
]


@pytest.mark.parametrize("mode", ["memory", "redis", "fallback"])
def test_a_bad_lock_ttl_is_named_alike_in_every_mode(
    mode: str, request: pytest.FixtureRequest
) -> None:
    if mode == "memory":
        config = CacheConfig()
    elif mode == "redis":
        config = request.getfixturevalue("redis_config")
    else:
        server: RedisServer = request.getfixturevalue("private_redis")
        config = config_for(server.port)
    with CacheService(config) as cache:
        if mode == "fallback":
            server.kill()
            cache.set("trip", 1)
            assert cache.is_redis_available() is False
        for ttl, kind, message in BAD_TTLS:
            for call in (cache.acquire_lock, cache.acquire_fenced_lock):
                with pytest.raises(kind) as raised:
                    call("k", ttl)
                assert str(raised.value) == message, (mode, call.__name__, ttl)
            token = cache.acquire_lock("k", 1_000)
            assert token is not None  # nothing was taken by the refused calls
            assert cache.extend_lock("k", token, 1_000) is True
            with pytest.raises(kind) as raised:
                cache.extend_lock("k", token, ttl)
            assert str(raised.value) == message, (mode, "extend_lock", ttl)
            assert cache.release_lock("k", token) is True
