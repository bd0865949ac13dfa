"""Cluster mode: what only a 3-primary cluster can show.

The whole shared suite already runs on the session cluster (the "cluster" backend of conftest.py).
Here: pattern deletion and reset reach every primary, with keys spread over the three slot ranges
and a glob-hostile prefix; no script ever spans slots (CROSSSLOT would fail the test); a message
reaches the listeners of services connected through every node.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from _servers import RedisCluster
from cachebolt import CacheConfig, CacheService


def _config(cluster: RedisCluster, **extra: object) -> CacheConfig:
    host, port = cluster.addresses[0]
    return CacheConfig(enabled=True, host=host, port=port, cluster=True, **extra)  # type: ignore[arg-type]


def _per_node(cluster: RedisCluster) -> list[int]:
    counts = []
    for node in cluster.nodes:
        with node.client() as client:
            counts.append(int(client.dbsize()))
    return counts


@pytest.fixture
def cluster(redis_cluster: RedisCluster, cluster_client: redis.RedisCluster) -> RedisCluster:
    """The session cluster, every primary flushed (by `cluster_client`)."""
    return redis_cluster


@pytest.fixture
def node_of(cluster: RedisCluster, cluster_client: redis.RedisCluster) -> Any:
    """The index in `cluster.nodes` of the primary that owns a key's slot."""
    ports = [port for _, port in cluster.addresses]

    def index(key: str) -> int:
        return ports.index(int(cluster_client.get_node_from_key(key).port))

    return index


@pytest.mark.parametrize("prefix", ["", "app[1]:"])
def test_del_pattern_and_reset_reach_every_primary(
    cluster: RedisCluster, node_of: Any, prefix: str
) -> None:
    keys = [f"feed:{i}" for i in range(90)]
    assert {node_of(prefix + key) for key in keys} == {0, 1, 2}  # on every primary
    with CacheService(_config(cluster, key_prefix=prefix)) as cache:
        for key in keys:
            cache.set(key, 1)
        cache.set("other", 1)
        assert all(count > 0 for count in _per_node(cluster))
        assert cache.del_pattern("feed:*") == len(keys)
        assert sum(_per_node(cluster)) == 1
        for key in keys[:30]:
            cache.set(key, 1)
            cache.sadd(f"s:{key}", "m")
            assert cache.acquire_lock(key, 10_000) is not None
            assert cache.check_rate_limit(key, 1, 60) is True
        cache.reset()
        assert _per_node(cluster) == [0, 0, 0]


def test_scripts_never_cross_slots(cluster: RedisCluster, node_of: Any) -> None:
    assert {node_of(f"lock:user:{i}") for i in range(40)} == {0, 1, 2}
    with CacheService(_config(cluster)) as cache:
        for i in range(40):  # keys on every primary, every script
            key = f"user:{i}"
            for algorithm in ("sliding_log", "fixed_window", "sliding_counter"):
                assert cache.hit_rate_limit(f"{key}:{algorithm}", 5, 60, algorithm=algorithm)
            token = cache.acquire_lock(key, 10_000)
            assert token is not None
            assert cache.extend_lock(key, token, 20_000) is True
            assert cache.release_lock(key, token) is True
        assert cache.is_redis_available() is True


def test_messages_reach_the_listeners_on_every_node(cluster: RedisCluster, node_of: Any) -> None:
    """Three services whose listeners sit on three different nodes all receive a message; the
    publisher's count is that of the node that took the PUBLISH only (documented)."""
    # A listener connects to the node of its first channel: one "pin" channel per primary.
    pins: dict[int, str] = {}
    for i in range(200):
        pins.setdefault(node_of(f"pin{i}"), f"pin{i}")
    assert sorted(pins) == [0, 1, 2]
    inboxes = [threading.Event() for _ in range(3)]
    services = [CacheService(_config(cluster)) for _ in range(4)]
    try:
        for service, inbox, pin in zip(services, inboxes, pins.values(), strict=False):
            service.subscribe(pin, lambda message: None)

            def on_news(message: Any, inbox: threading.Event = inbox) -> None:
                assert message == "hello"
                inbox.set()

            service.subscribe("news", on_news)
        # The publisher has no listener: redis-py routes by the channel's slot, and that node
        # counts its own subscriber only; the other two hear it over the cluster bus.
        assert services[3].publish("news", "hello") == 1
        assert all(inbox.wait(5) for inbox in inboxes)
    finally:
        for service in services:
            service.close()
