"""Sentinel: the settings, and a failover under traffic (a primary SIGKILLed, a replica promoted).

Each failover test starts its own primary, replica and 3 sentinels on loopback
(`RedisSentinels`), runs `Traffic` (threads doing set/get/lock), kills the primary and reports the
figures of RELIABILITY.md's "Failover" section: exceptions that reached callers, seconds until the
service serves from the promoted primary, acknowledged writes missing afterwards, locks granted
twice. `make soak` (`CACHEBOLT_SOAK=1`) runs longer traffic.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import RedisSentinels, RedisServer
from cachebolt import AsyncCacheService, CacheConfig, CacheService, ConfigError
from conftest import LoopThread, SyncProxy, wait_until
from reliability._figures import figure, size

SECRET = "s3ntinel-Pa55"
DATA_SECRET = "data-Pa55"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VALKEY_SENTINELS": "a:1"}, "VALKEY_SENTINELS needs VALKEY_SENTINEL_MASTER"),
        ({"VALKEY_SENTINEL_MASTER": "m"}, "VALKEY_SENTINEL_MASTER is set but VALKEY_SENTINELS"),
        (
            {"VALKEY_SENTINEL_PASSWORD": SECRET},
            "VALKEY_SENTINEL_PASSWORD is set but VALKEY_SENTINELS",
        ),
        ({"VALKEY_SENTINELS": "a", "VALKEY_SENTINEL_MASTER": "m"}, "'a' is not host:port"),
        ({"VALKEY_SENTINELS": "a:1,", "VALKEY_SENTINEL_MASTER": "m"}, "'' is not host:port"),
        ({"VALKEY_SENTINELS": "a:x", "VALKEY_SENTINEL_MASTER": "m"}, "port of 'a:x'"),
        ({"VALKEY_SENTINELS": "a:0", "VALKEY_SENTINEL_MASTER": "m"}, "out of range"),
        ({"VALKEY_SENTINELS": "::1:5", "VALKEY_SENTINEL_MASTER": "m"}, "IPv6 host"),
        (
            {"VALKEY_SENTINELS": "a:1", "VALKEY_SENTINEL_MASTER": "m", "VALKEY_CLUSTER": "true"},
            "VALKEY_CLUSTER",
        ),
    ],
)
def test_bad_sentinel_variables_name_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        CacheConfig.from_env({**environ, "VALKEY_ENABLED": "true"})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sentinels": "a:1"}, "CacheConfig.sentinels needs CacheConfig.sentinel_master"),
        ({"sentinel_username": "u"}, "CacheConfig.sentinel_username is set but"),
        ({"sentinels": "a:1", "sentinel_master": "two words"}, "is not a master name"),
        ({"sentinels": "a:1", "sentinel_master": ""}, "is not a master name"),
        ({"sentinels": ["a:1"], "sentinel_master": "m"}, "CacheConfig.sentinels=.* must be str"),
        ({"sentinels": "a:1", "sentinel_master": "m", "sentinel_password": 5}, r"=\*\*\* must"),
    ],
)
def test_bad_sentinel_fields_raise_config_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CacheConfig(enabled=True, **fields)


def test_sentinel_settings_parse_and_hide_the_password() -> None:
    config = CacheConfig.from_env(
        {
            "VALKEY_SENTINELS": " 10.0.0.1:26379, [::1]:26380 ",
            "VALKEY_SENTINEL_MASTER": "cache",
            "VALKEY_SENTINEL_USERNAME": "watcher",
            "VALKEY_SENTINEL_PASSWORD": SECRET,
        }
    )
    assert config.sentinel_addresses == (("10.0.0.1", 26379), ("::1", 26380))
    assert (config.sentinel_master, config.sentinel_username) == ("cache", "watcher")
    assert config.sentinel_password == SECRET
    assert SECRET not in repr(config)


def _config(group: RedisSentinels, **extra: Any) -> CacheConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "sentinels": group.addresses,
        "sentinel_master": group.name,
        "password": DATA_SECRET,
        "sentinel_password": SECRET,
        "connect_timeout_ms": 500,
        "command_timeout_ms": 500,
    }
    return CacheConfig(**{**values, **extra})


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RedisSentinels]:
    """A primary, a replica and 3 sentinels, passwords on both; fails over in about 2 s."""
    with RedisSentinels(
        tmp_path, password=DATA_SECRET, sentinel_password=SECRET, down_after_ms=800
    ) as started:
        yield started


def test_wrong_sentinel_password_falls_back_and_hides_it(
    group: RedisSentinels, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-" + SECRET
    with CacheService(_config(group, sentinel_password=wrong)) as cache:
        assert not cache.is_redis_available()
        cache.set("k", 1)  # served from memory
        assert cache.get("k") == 1
    assert wrong not in caplog.text and SECRET not in caplog.text
    with CacheService(_config(group)) as cache:
        assert cache.is_redis_available()
        cache.set("k", 2)
    with group.primary.client() as client:
        assert client.get("k") == "2"


# --- failover under traffic ------------------------------------------------------------------


class Traffic:
    """Threads doing set, get and lock on `cache` until stopped; counts what callers saw.

    Every write is a new key (`w:<thread>:<n>`) whose acknowledgement time is kept, so the keys
    missing afterwards can be split into those acknowledged before the failure and after it
    (those went to the in-process fallback). Locks are held 20 ms over 3 names; a grant while
    another thread holds the same name is a lock granted twice.
    """

    def __init__(self, cache: Any, threads: int = 4) -> None:
        self.cache = cache
        self.errors: list[BaseException] = []
        self.acked: list[tuple[str, float]] = []
        self.locks_granted = 0
        self.granted_twice = 0
        self._holders: dict[str, int] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(index,), daemon=True)
            for index in range(threads)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                key = f"w:{index}:{n}"
                self.cache.set(key, n)
                with self._guard:
                    self.acked.append((key, time.monotonic()))
                self.cache.get(f"w:{index}:{max(1, n - 1)}")
                self._lock(f"L{n % 3}")
            except Exception as exc:
                self.errors.append(exc)

    def _lock(self, name: str) -> None:
        token = self.cache.acquire_lock(name, 2000)
        if token is None:
            return
        with self._guard:
            self.locks_granted += 1
            self.granted_twice += self._holders.get(name, 0) > 0
            self._holders[name] = self._holders.get(name, 0) + 1
        time.sleep(0.02)
        with self._guard:
            self._holders[name] -= 1
        self.cache.release_lock(name, token)

    def report(self, name: str, client: Any, since: float, serving_after: float) -> None:
        """Record the figure `name` (writes checked on `client`'s server, the failure at
        `since`) and check that no exception reached a caller."""
        lost, served_by_memory = self.missing(client, since)
        figure(
            name,
            caller_exceptions=len(self.errors),
            serving_from_new_primary_s=round(serving_after, 2),
            acked_writes=len(self.acked),
            lost_acked_before_failure=lost,
            acked_to_memory_during_failover=served_by_memory,
            locks_granted=self.locks_granted,
            locks_granted_twice=self.granted_twice,
        )
        assert self.errors == []
        assert serving_after < 30
        assert len(self.acked) > 0 and self.locks_granted > 0

    def missing(self, client: Any, since: float) -> tuple[int, int]:
        """(acknowledged before `since`, at or after it) that `client`'s server lacks."""
        with self._guard:
            acked = list(self.acked)
        present = [bool(value) for value in _exists_each(client, [key for key, _ in acked])]
        before = sum(
            1 for (_, at), found in zip(acked, present, strict=True) if at < since and not found
        )
        after = sum(
            1 for (_, at), found in zip(acked, present, strict=True) if at >= since and not found
        )
        return before, after


def _exists_each(client: Any, keys: list[str]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.exists(key)
    return list(pipe.execute()) if keys else []


def serving_from(
    cache: Any, node: RedisServer, started: float, key: str = "failover:marker"
) -> float:
    """Seconds from `started` until a write of `key` through `cache` lands on `node` (the new
    primary); fails after 30 s."""
    with node.client() as client:

        def landed() -> bool:
            marker = str(time.monotonic())
            cache.set(key, marker)
            return bool(client.get(key) == f'"{marker}"')

        wait_until(landed, 30.0)
    return time.monotonic() - started


@contextlib.contextmanager
def open_service(flavour: str, config: CacheConfig) -> Iterator[Any]:
    """A blocking service, or an asyncio one driven from threads (`SyncProxy`)."""
    if flavour == "sync":
        with CacheService(config) as cache:
            yield cache
        return
    runner = LoopThread()
    service = AsyncCacheService(config)
    try:
        proxy = SyncProxy(service, runner)
        proxy.connect()
        yield proxy
    finally:
        runner.run(service.close())
        runner.stop()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_primary_killed_fails_over_without_errors(group: RedisSentinels, flavour: str) -> None:
    seconds = size(1, 20)
    with open_service(flavour, _config(group)) as cache, Traffic(cache) as traffic:
        time.sleep(seconds / 2)
        old = group.primary
        killed_at = time.monotonic()
        old.kill()  # SIGKILL: no shutdown, no last replication
        promoted = group.wait_promoted(old)
        serving_after = serving_from(cache, promoted, killed_at)
        time.sleep(seconds / 2)
    with promoted.client() as client:
        traffic.report(f"failover.sentinel.{flavour}", client, killed_at, serving_after)
