"""Cluster mode: a local 3-primary cluster runs the service; patterns reach every primary.

`redis_cluster` (conftest.py) is created with `redis-cli --cluster create` and waits for
`cluster_state:ok` on every node. Keys below are chosen so that they fall in the slot ranges of all
three primaries; a command spanning slots would raise CROSSSLOT, which would fail the test.
"""

from __future__ import annotations

import pytest
import redis
from _servers import RedisCluster
from _suite import exercise
from cachebolt import CacheConfig, CacheService
from redis.cluster import key_slot


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
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    redis_cluster.flush()
    return redis_cluster


def test_the_cluster_is_formed(cluster: RedisCluster) -> None:
    with redis.RedisCluster(host="127.0.0.1", port=cluster.addresses[0][1]) as client:
        assert len(client.get_primaries()) == 3
        for i in range(60):
            client.set(f"spread:{i}", i)
    assert all(count > 0 for count in _per_node(cluster))


def test_the_service_suite_runs_on_the_cluster(cluster: RedisCluster) -> None:
    with CacheService(_config(cluster)) as cache:
        assert cache.is_redis_available() is True
        exercise(cache, tag="cl", cluster=True)
        exercise(cache, tag="{cl}", cluster=True)  # a user key that is itself a hash tag


@pytest.mark.parametrize("prefix", ["", "app[1]:"])
def test_del_pattern_and_reset_reach_every_primary(cluster: RedisCluster, prefix: str) -> None:
    keys = [f"feed:{i}" for i in range(90)]
    slots = {key_slot(f"{prefix}{key}".encode()) // 5462 for key in keys}
    assert slots == {0, 1, 2}  # the keys cover the three slot ranges
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


def test_scripts_never_cross_slots(cluster: RedisCluster) -> None:
    with CacheService(_config(cluster)) as cache:
        for i in range(40):  # keys of every slot range, every script
            key = f"user:{i}"
            for algorithm in ("sliding_log", "fixed_window", "sliding_counter"):
                assert cache.hit_rate_limit(f"{key}:{algorithm}", 5, 60, algorithm=algorithm)
            token = cache.acquire_lock(key, 10_000)
            assert token is not None
            assert cache.extend_lock(key, token, 20_000) is True
            assert cache.release_lock(key, token) is True
        assert cache.is_redis_available() is True
