"""Redis-side hazards: maxmemory eviction, writes refused at maxmemory, a restart that loses data.

Each test starts its own redis-server (`--save "" --appendonly no`, as every test server) with
the maxmemory settings it needs, or changes them with CONFIG SET on a private server. The counted
tests report a figure (see tests/reliability/_figures.py); `make soak` runs them at full sizes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _servers import RedisCluster, RedisServer
from cachebolt import CacheConfig, CapacityError
from conftest import ACL_PASSWORD, ACL_USER, ServiceFactory, wait_until
from reliability._figures import figure, size

FILL_VALUE = "x" * 1024
OOM_MESSAGE = "Redis is out of memory"
# Fail-closed policies: a call that meets an outage (the restart) is refused, never served by a
# per-process memory lock or limit that the test would then count as a Redis answer.
FAIL_CLOSED = {"lock_fallback": "fail_closed", "rate_limit_fallback": "fail_closed"}


def config_for(server: RedisServer, **extra: Any) -> CacheConfig:
    return CacheConfig(
        enabled=True,
        host=server.host,
        port=server.port,
        username=extra.pop("username", None),
        password=extra.pop("password", None),
        **extra,
    )


def start_server(tmp_path: Path, *args: str) -> RedisServer:
    return RedisServer(tmp_path / "redis", extra_args=args).start()


@pytest.fixture
def hazard_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A private server with the `--maxmemory ...` options given by indirect parametrization."""
    with RedisServer(tmp_path / "redis", extra_args=request.param) as server:
        yield server


def warnings_about_eviction(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "maxmemory-policy" in r.getMessage()
    ]


# --- the eviction policy: read at connect, warned about, reported ---------------------------------


@pytest.mark.parametrize(
    ("policy", "maxmemory", "warned"),
    [
        ("noeviction", "64mb", False),
        ("allkeys-lru", "64mb", True),
        ("allkeys-lfu", "64mb", True),
        ("allkeys-random", "64mb", True),
        # volatile-* evict keys with a TTL: every lock and rate-limit key has one.
        ("volatile-lru", "64mb", True),
        ("volatile-lfu", "64mb", True),
        ("volatile-random", "64mb", True),
        ("volatile-ttl", "64mb", True),
        ("allkeys-lru", "0", False),  # no maxmemory: nothing is ever evicted
    ],
)
def test_an_evicting_policy_is_warned_about_once_and_reported(
    svc: ServiceFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    maxmemory: str,
    warned: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    with start_server(tmp_path, "--maxmemory", maxmemory, "--maxmemory-policy", policy) as server:
        cache = svc(config_for(server))
        cache.set("k", 1)
        cache.stats()
        assert cache.stats()["redis_maxmemory_policy"] == policy
        got = warnings_about_eviction(caplog)
        if warned:
            assert len(got) == 1, got
            assert f"{server.host}:{server.port}={policy}" in got[0]
            assert "only noeviction" in got[0]
        else:
            assert got == []
        # stats() reads the policy again: a change at run time shows.
        with server.client() as admin:
            admin.config_set("maxmemory-policy", "volatile-ttl")
        assert cache.stats()["redis_maxmemory_policy"] == "volatile-ttl"


@pytest.mark.parametrize("backend", ["memory", "redis", "cluster"], indirect=True)
def test_stats_report_the_policy_on_every_backend(cache: Any, backend: str) -> None:
    cache.set("k", 1)
    want = "disabled" if backend == "memory" else "noeviction"
    assert cache.stats()["redis_maxmemory_policy"] == want
    assert cache.stats_snapshot()["redis_maxmemory_policy"] == want


def test_a_user_denied_config_reads_the_policy_from_info_with_no_denial(
    acl_server: RedisServer, svc: ServiceFactory
) -> None:
    with acl_server.client() as admin:
        admin.acl_log_reset()
        cache = svc(config_for(acl_server, username=ACL_USER, password=ACL_PASSWORD))
        cache.set("k", 1)  # the asyncio service connects on its first call
        assert cache.stats()["redis_maxmemory_policy"] == "noeviction"
        assert admin.acl_log() == []  # INFO answered: CONFIG was never tried


def test_a_user_denied_info_and_config_reads_unknown(
    svc: ServiceFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    rules = ("on", ">pw", "~*", "&*", "+@all", "-info", "-config")
    server = start_server(
        tmp_path,
        "--maxmemory",
        "64mb",
        "--maxmemory-policy",
        "allkeys-lru",
        "--user",
        "app",
        *rules,
    )
    with server:
        cache = svc(config_for(server, username="app", password="pw"))
        cache.set("k", 1)
        assert cache.get("k") == 1 and cache.is_redis_available() is True
        stats = cache.stats()
        assert stats["redis_maxmemory_policy"] == "unknown" and stats["backend"] == "redis"
        assert stats["breaker_state"] == "closed"
        assert warnings_about_eviction(caplog) == []
        infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert sum("maxmemory-policy unknown" in m for m in infos) == 1


def test_a_cluster_names_each_evicting_primary(
    redis_cluster: RedisCluster,
    cluster_config: CacheConfig,
    svc: ServiceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    evicting = redis_cluster.nodes[1]
    with evicting.client() as admin:
        admin.config_set("maxmemory", "1gb")
        admin.config_set("maxmemory-policy", "allkeys-lru")
        try:
            cache = svc(cluster_config)
            cache.set("k", 1)
            policy = cache.stats()["redis_maxmemory_policy"]
        finally:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", "0")
    got = warnings_about_eviction(caplog)
    assert len(got) == 1
    assert f"{evicting.host}:{evicting.port}=allkeys-lru" in got[0]
    for node in (redis_cluster.nodes[0], redis_cluster.nodes[2]):
        assert f":{node.port}=" not in got[0]  # only the evicting primary is named
        assert f"{node.host}:{node.port}=noeviction" in policy
    assert f"{evicting.host}:{evicting.port}=allkeys-lru" in policy


# --- eviction under memory pressure, counted ------------------------------------------------------


def fill(client: redis.Redis, count: int, *, ttl_ms: int | None = None) -> int:
    """`count` values of 1 KB; the number Redis accepted (an OOM refusal ends the fill)."""
    stored = 0
    for i in range(count):
        try:
            client.set(f"fill:{i}", FILL_VALUE, px=ttl_ms)
        except redis.exceptions.OutOfMemoryError:
            break
        stored += 1
    return stored


@pytest.mark.parametrize(
    ("policy", "values_ttl_ms"),
    [
        ("noeviction", None),
        ("allkeys-lru", None),
        ("volatile-lru", None),
        ("volatile-lru", 600_000),
    ],
    ids=["noeviction", "allkeys-lru", "volatile-lru,values-without-ttl", "volatile-lru,values-ttl"],
)
def test_eviction_grants_locks_twice_and_resets_limits(
    svc: ServiceFactory, tmp_path: Path, policy: str, values_ttl_ms: int | None
) -> None:
    """Hold N locks and N exhausted limits, write 4 MB of values into a 2 MB server, free the
    values again, then count the locks a second holder gets and the limits that allow again."""
    n = size(40, 1000)
    server = start_server(tmp_path, "--maxmemory", "2mb", "--maxmemory-policy", policy)
    with server, server.client() as admin:
        cache = svc(config_for(server, **FAIL_CLOSED))
        for i in range(n):
            assert cache.acquire_lock(f"job:{i}", 600_000) is not None
            assert cache.check_rate_limit(f"user:{i}", 1, 600) is True
        stored = fill(admin, 4 * 1024, ttl_ms=values_ttl_ms)
        evicted = int(admin.info("stats")["evicted_keys"])
        admin.delete(*[f"fill:{i}" for i in range(stored)] or ["fill:none"])
        double_grants = sum(cache.acquire_lock(f"job:{i}", 600_000) is not None for i in range(n))
        resets = sum(cache.check_rate_limit(f"user:{i}", 1, 600) for i in range(n))
        stats = cache.stats()
    figure(
        f"hazards.eviction.{policy}" + (",values-ttl" if values_ttl_ms else ""),
        locks=n,
        limits=n,
        values_stored=stored,
        evicted_keys=evicted,
        double_grants=double_grants,
        limit_resets=resets,
    )
    assert stats["fallback_calls"] == 0 and stats["breaker_state"] == "closed"
    if policy == "noeviction":
        assert (double_grants, resets, evicted) == (0, 0, 0)
        assert stored < 4 * 1024  # the fill was refused at maxmemory instead
    elif policy == "volatile-lru" and values_ttl_ms is None:
        # The locks and limits are the only keys it may evict: all of them go, then the fill is
        # refused (OOM) since the values cannot be evicted.
        assert (double_grants, resets, evicted) == (n, n, 2 * n)
        assert stored < 4 * 1024
    else:
        # Least recently used: the locks and limits, written first and not touched since.
        assert double_grants > 0 and resets > 0
        assert stored == 4 * 1024


# --- noeviction at maxmemory: every call type has a defined outcome ------------------------------


def push_into_oom(admin: redis.Redis) -> None:
    """Put the server 512 KB over its maxmemory (noeviction): every write is refused, reads not."""
    fill(admin, 1024)
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory", str(used - 512 * 1024))


@pytest.fixture
def oom_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", extra_args=("--maxmemory-policy", "noeviction")) as s:
        yield s


def test_noeviction_at_maxmemory_refuses_writes_with_capacity_error(
    svc: ServiceFactory, oom_server: RedisServer
) -> None:
    cache = svc(config_for(oom_server))
    cache.set("pre", {"v": 1})
    held = cache.acquire_lock("held", 60_000)
    fenced = cache.acquire_fenced_lock("fenced", 60_000)
    assert held is not None and fenced is not None
    got: list[Any] = []
    arrived = threading.Event()

    def on_message(message: Any) -> None:
        got.append(message)
        arrived.set()

    computed: list[int] = []

    def compute() -> int:
        computed.append(1)
        return 5

    with oom_server.client() as admin, cache.subscribe("ch", on_message):
        push_into_oom(admin)
        filled = set(admin.keys("*"))
        refused = {
            "set": lambda: cache.set("a", 1),
            "get_or_set": lambda: cache.get_or_set("g", 60, compute),
            "incr": lambda: cache.incr("n"),
            "sadd": lambda: cache.sadd("s", "m"),
            "hset": lambda: cache.hset("h", "f", 1),
            "acquire_lock": lambda: cache.acquire_lock("new", 1_000),
            "acquire_fenced_lock": lambda: cache.acquire_fenced_lock("new", 1_000),
            "check_rate_limit": lambda: cache.check_rate_limit("rl", 5, 60),
            **{
                f"hit_rate_limit[{algorithm}]": (
                    lambda algorithm=algorithm: cache.hit_rate_limit(
                        "rl", 5, 60, algorithm=algorithm
                    )
                )
                for algorithm in ("sliding_log", "fixed_window", "sliding_counter")
            },
        }
        for name, call in refused.items():
            with pytest.raises(CapacityError, match=OOM_MESSAGE):
                call()
            assert set(admin.keys("*")) == filled, f"{name} wrote while refused"
        with pytest.raises(CapacityError, match=OOM_MESSAGE), cache.lock("ctx", 1_000):
            pass
        assert computed == [1]  # get_or_set computed once and stored nothing

        # Reads, extensions, releases, deletions and publishing are served.
        assert cache.get("pre") == {"v": 1}
        assert cache.extend_lock("held", held, 60_000) is True
        assert cache.release_lock("held", held) is True
        assert cache.release_lock("fenced", fenced.token) is True
        assert cache.publish("ch", {"hello": 1}) == 1
        assert arrived.wait(5) and got == [{"hello": 1}]
        assert cache.delete("pre") is True

        # Redis is up: the breaker stays closed, nothing went to memory.
        stats = cache.stats()
        assert stats["breaker_state"] == "closed" and stats["backend"] == "redis"
        assert stats["fallback_calls"] == 0 and cache.is_redis_available() is True

        admin.config_set("maxmemory", "0")  # room again: the same writes go through
        cache.set("a", 1)
        assert cache.get("a") == 1 and cache.acquire_lock("new", 1_000) is not None


@pytest.mark.parametrize("mode", ["memory", "redis"])
def test_a_full_store_refuses_a_write_with_capacity_error_on_both_backends(
    svc: ServiceFactory, oom_server: RedisServer, mode: str
) -> None:
    """Memory at its byte bound and Redis at maxmemory: the same type, nothing stored, reads and
    deletions served, no fallback."""
    config = CacheConfig(memory_max_bytes=64 * 1024) if mode == "memory" else config_for(oom_server)
    cache = svc(config)
    cache.set("pre", 1)
    value = "x" * (128 * 1024)  # over the memory bound; any write is refused at Redis OOM
    if mode == "redis":
        with oom_server.client() as admin:
            push_into_oom(admin)
    with pytest.raises(CapacityError):
        cache.set("big", value)
    assert cache.get("big") is None and cache.get("pre") == 1
    assert cache.delete("pre") is True
    assert cache.stats()["fallback_calls"] == 0


# --- a restart without persistence ----------------------------------------------------------------


def test_a_restart_without_persistence_keeps_fences_increasing_and_resets_locks_and_limits(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    """The test servers run `--save "" --appendonly no`: a restart loses every key."""
    n, restarts = size(20, 500), size(1, 5)
    cache = svc(config_for(private_redis, **FAIL_CLOSED))
    other = svc(config_for(private_redis, **FAIL_CLOSED))
    highest = 0
    regressions = taken_again = limits_reset = 0
    for _ in range(restarts):
        fences = [cache.acquire_fenced_lock(f"job:{i}", 600_000) for i in range(n)]
        assert all(f is not None and f.fence > highest for f in fences)
        highest = max(f.fence for f in fences if f is not None)
        for i in range(n):
            assert cache.check_rate_limit(f"user:{i}", 1, 600) is True
        assert other.acquire_fenced_lock("job:0", 600_000) is None
        assert other.check_rate_limit("user:0", 1, 600) is False

        private_redis.restart()
        for service in (cache, other):
            wait_until(lambda service=service: service.ping() is not None, timeout=10)

        # Every lock and limit was lost with the dataset: another holder takes each lock (with
        # a fence above every earlier one: the lost counter restarts from the server clock in
        # microseconds), and each limit's count starts again.
        after = [other.acquire_fenced_lock(f"job:{i}", 600_000) for i in range(n)]
        taken_again += sum(f is not None for f in after)
        regressions += sum(f is not None and f.fence <= highest for f in after)
        limits_reset += sum(other.check_rate_limit(f"user:{i}", 1, 600) for i in range(n))
        highest = max([highest] + [f.fence for f in after if f is not None])
        with private_redis.client() as admin:
            admin.flushall()
    assert cache.stats()["fallback_locks"] == 0 and other.stats()["fallback_locks"] == 0
    figure(
        "hazards.restart",
        locks=n,
        restarts=restarts,
        fence_regressions=regressions,
        locks_taken_again=taken_again,
        limits_reset=limits_reset,
    )
    assert regressions == 0
    assert taken_again == limits_reset == n * restarts


def test_fastapi_routes_answer_503_when_redis_is_out_of_memory(oom_server: RedisServer) -> None:
    """`RateLimit` and `WithLock` cannot record anything: 503 with Retry-After, never a 500."""
    from cachebolt import CacheService
    from cachebolt.fastapi import RateLimit, WithLock
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.post("/limited", dependencies=[Depends(RateLimit(5, 60))])
    def limited() -> int:
        return 1

    @app.post("/locked", dependencies=[Depends(WithLock("job", 5_000))])
    def locked() -> int:
        return 1

    with CacheService(config_for(oom_server)) as cache, oom_server.client() as admin:
        app.state.cachebolt = cache
        push_into_oom(admin)
        with TestClient(app) as client:
            for path in ("/limited", "/locked"):
                response = client.post(path)
                assert response.status_code == 503, (path, response.text)
                assert int(response.headers["Retry-After"]) >= 1
        assert cache.stats()["fallback_calls"] == 0
