"""Rate-limit state under the in-memory backend's bound: memory mode and the fallback of Redis mode.

Keys rotate as an attacker rotating client IPs would make them. The figures come from the store's
own accounting (`stats()["rate_limit_bytes"]`), not from RSS.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from _servers import RedisServer
from cachebolt import CacheConfig, CacheService, CapacityError
from cachebolt._core import MemoryStore
from conftest import ServiceFactory
from reliability._figures import figure

MAX_BYTES = 256 * 1024
SHARE = MAX_BYTES // 2  # the default share of rate-limit state
FLOOD = 5000  # about 200 bytes each: several times the share


def refused_message(share: int) -> re.Pattern[str]:
    return re.compile(
        r"rate limit \"[a-z]+:\d+\" needs more state, but rate-limit state is at its bound "
        rf"\(max_rate_limit_bytes={share}\); nothing was recorded"
    )


@pytest.fixture(params=["memory", "fallback"])
def bounded(request: pytest.FixtureRequest, svc: ServiceFactory) -> Any:
    """A service whose memory backend has `MAX_BYTES`: in memory mode, or in Redis mode with its
    server killed, so every call is served by the fallback memory store."""
    config = CacheConfig(memory_max_bytes=MAX_BYTES)
    if request.param == "memory":
        return svc(config)
    server: RedisServer = request.getfixturevalue("private_redis")
    cache = svc(
        CacheConfig(
            enabled=True,
            host="127.0.0.1",
            port=server.port,
            connect_timeout_ms=500,
            command_timeout_ms=500,
            memory_max_bytes=MAX_BYTES,
        )
    )
    assert cache.check_rate_limit("warm-up", 1, 60) is True  # on Redis
    server.kill()
    return cache


def flood(
    cache: Any,
    start: int,
    stop: int,
    *,
    prefix: str = "ip",
    window: float = 600,
    share: int = SHARE,
) -> int:
    """Hit fresh keys `{prefix}:{i}` once each; the number refused. Checks the bound as it goes."""
    refused = 0
    for i in range(start, stop):
        try:
            assert cache.check_rate_limit(f"{prefix}:{i}", 100, window) is True
        except CapacityError as exc:
            assert refused_message(share).fullmatch(str(exc)), str(exc)
            refused += 1
        if i % 100 == 0:
            assert cache.stats()["rate_limit_bytes"] <= share
    assert cache.stats()["rate_limit_bytes"] <= share
    return refused


def test_rotating_keys_stay_under_the_bound_and_the_hammered_key_keeps_its_count(
    request: pytest.FixtureRequest, bounded: Any
) -> None:
    allowed = [bounded.check_rate_limit("login:alice", 3, 600) for _ in range(4)]
    assert allowed == [True, True, True, False]
    refused = 0
    for start in range(0, FLOOD, 500):
        refused += flood(bounded, start, start + 500)
        # Between the waves the attacker tries the key he is after: its count survived.
        assert bounded.check_rate_limit("login:alice", 3, 600) is False
    stats = bounded.stats()
    assert SHARE - 300 < stats["rate_limit_bytes"] <= SHARE  # full up to one entry
    assert refused > FLOOD // 2
    figure(
        f"memory_bound.rotating_keys[{request.node.callspec.id}]",
        keys=FLOOD,
        share_bytes=SHARE,
        max_bytes=MAX_BYTES,
        refused=refused,
        kept=FLOOD - refused,
        rate_limit_bytes=stats["rate_limit_bytes"],
    )
    # A refused hit recorded nothing: the key is still absent, and a retry is refused too.
    assert flood(bounded, FLOOD - 1, FLOOD) == 1


def test_values_make_room_and_the_whole_backend_stays_under_max_bytes(
    request: pytest.FixtureRequest, svc: ServiceFactory
) -> None:
    cache = svc(CacheConfig(memory_max_bytes=MAX_BYTES))
    for i in range(2000):
        cache.set(f"page:{i}", "x" * 200)
    assert cache.stats()["evictions"] > 0
    flood(cache, 0, FLOOD)
    stats = cache.stats()
    # used_bytes counts every entry: values and rate-limit state (no locks here).
    assert stats["used_bytes"] <= MAX_BYTES
    assert SHARE - 300 < stats["rate_limit_bytes"] <= SHARE
    assert stats["used_bytes"] - stats["rate_limit_bytes"] >= MAX_BYTES - SHARE - 300
    figure(
        f"memory_bound.values_make_room[{request.node.callspec.id}]",
        max_bytes=MAX_BYTES,
        used_bytes=stats["used_bytes"],
        rate_limit_bytes=stats["rate_limit_bytes"],
        value_bytes=stats["used_bytes"] - stats["rate_limit_bytes"],
    )
    # Writing values evicts values only.
    for i in range(2000):
        cache.set(f"feed:{i}", "y" * 200)
    assert cache.stats()["rate_limit_bytes"] == stats["rate_limit_bytes"]
    assert cache.check_rate_limit("ip:0", 1, 600) is False  # limit 1: its hit is still counted


def test_state_whose_window_passed_makes_room_at_once() -> None:
    store = MemoryStore(max_bytes=MAX_BYTES, manual_clock=True, cleanup_interval_seconds=None)
    cache = CacheService(store=store)
    try:
        assert flood(cache, 0, FLOOD, window=1) > 0
        kept = store.stats()["keys"]
        store.advance_clock(1000)
        # No sweep runs: the calls themselves reclaim the expired state (by sampling, so the
        # last few keys may miss the last few dead entries).
        later = flood(cache, 0, kept, prefix="later", window=1)
        figure("memory_bound.window_passed", keys_kept=kept, refused_after_the_window=later)
        assert later <= kept // 20
        assert store.stats()["expired"] > kept // 2
    finally:
        cache.close()


def test_share_setting_and_bad_values() -> None:
    def bound(**kwargs: int) -> int:
        return MemoryStore(**kwargs).stats()["max_rate_limit_bytes"]

    assert bound(max_bytes=MAX_BYTES) == SHARE
    assert bound(max_bytes=MAX_BYTES, max_rate_limit_bytes=4096) == 4096
    assert bound(max_bytes=1000, max_rate_limit_bytes=5000) == 1000  # at most max_bytes
    assert bound(max_rate_limit_bytes=4096) == 4096
    assert bound() == 0  # unbounded
    with pytest.raises(ValueError, match=r"max_rate_limit_bytes must be >= 1 or None, got 0"):
        MemoryStore(max_rate_limit_bytes=0)
    config = CacheConfig.from_env({"CACHE_MEMORY_RATE_LIMIT_MAX_BYTES": "4096"})
    assert config.memory_rate_limit_max_bytes == 4096
    with CacheService(config) as cache:
        assert flood(cache, 0, 100, share=4096) > 50
