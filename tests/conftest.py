"""Fixtures: one test body runs against `CacheService` and `AsyncCacheService` on each backend.

`cache` is parametrized sync/async. The async variant is `SyncProxy`: every coroutine method of an
`AsyncCacheService` runs to completion on an event loop that lives in its own thread, so the same
blocking test code drives both services, and pub/sub callbacks on that loop can be awaited with
`threading.Event`. `backend` is parametrized "memory" / "redis" / "cluster": on "redis" the services
talk to a `redis-server` that the session starts itself (tests/_servers.py), on "cluster" to a local
3-primary cluster the session starts itself; either is flushed (every primary) before each test.

Time moves through `clock.advance(seconds)`, never by sleeping. On "memory" that is the store's
manual clock. On "redis" and "cluster" `store` is `RedisStoreView` and the clock moves the expiry
of every key (`RedisStoreView.advance_clock`); Redis's own clock (`TIME`, used by the rate-limit
scripts) cannot move, so the few tests that need it carry `@pytest.mark.memory_only(reason=...)`
and are deselected on both; tests/test_realtime.py covers the same behaviour in real time. A test
of a documented standalone-only behaviour would carry `@pytest.mark.standalone_only(reason=...)`,
deselected on "cluster" only (none needs it today: every shared test runs on the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from _servers import (
    SERVER_BIN,
    RedisCluster,
    RedisServer,
    TLSFiles,
    make_tls_files,
    no_retry,
    tls_unsupported_reason,
)
from cachebolt import AsyncCacheService, CacheConfig, CacheService
from cachebolt._core import MemoryStore

T = TypeVar("T")


BACKENDS = ["memory", "redis", "cluster"]
# The backends served by Redis (standalone or cluster): `memory_only` tests are deselected there.
REDIS_BACKENDS = frozenset({"redis", "cluster"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "memory_only(reason): the test needs the memory store's manual clock or internals; "
        "deselected on the redis and cluster backends (reason required)",
    )
    config.addinivalue_line(
        "markers",
        "standalone_only(reason): a documented behaviour of a standalone server that a Redis "
        "Cluster does not have; deselected on the cluster backend (reason required)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect `memory_only` tests on "redis"/"cluster" and `standalone_only` tests on "cluster"
    (not a skip: they cannot run there)."""
    keep, drop = [], []
    for item in items:
        memory_only = item.get_closest_marker("memory_only")
        standalone_only = item.get_closest_marker("standalone_only")
        for marker in (memory_only, standalone_only):
            if marker is not None and not marker.kwargs.get("reason"):
                raise pytest.UsageError(f"{item.nodeid}: {marker.name} needs reason=...")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        deselect = (memory_only is not None and backend in REDIS_BACKENDS) or (
            standalone_only is not None and backend == "cluster"
        )
        (drop if deselect else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# --- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A standalone server (redis-server, or valkey-server: tests/_servers.py) for the whole
    session, stopped by its pid at the end.

    Shared: a test that uses it must not assume an empty server unless it asks for `redis_client`
    (which flushes), and must never stop, kill or pause it (start a private `RedisServer`).
    """
    _need_redis()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """redis://127.0.0.1:<port>/0 of the session server."""
    return redis_server.url


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A raw redis-py client (str replies) on the session server, FLUSHALLed before the test
    and its statistics reset (`stats()` reads the server's expired/evicted counts)."""
    with redis_server.client() as client:
        client.flushall()
        client.config_resetstat()
        yield client


@pytest.fixture
def redis_config(redis_client: redis.Redis, redis_url: str) -> CacheConfig:
    """`CacheConfig` of a service on the (flushed) session server."""
    return CacheConfig(enabled=True, url=redis_url)


# Least privilege as on managed Redis: no KEYS, FLUSHDB/FLUSHALL, DEBUG, CONFIG, ACL, admin.
ACL_USER = "cb"
ACL_PASSWORD = "cb-pw:@/&%"  # URL-hostile on purpose
ACL_RULES = (
    "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all",
    "-keys", "-flushdb", "-flushall", "-debug", "-config", "-acl", "-shutdown", "-monitor",
    "-save", "-bgsave", "-bgrewriteaof", "-replicaof", "-slaveof", "-swapdb", "-migrate",
)  # fmt: skip


def _need_redis() -> None:
    if SERVER_BIN is None:
        pytest.skip("redis-server is not installed (run `make system-deps`)")


@pytest.fixture(scope="session")
def needs_tls() -> None:
    """Skips a test that needs a TLS server when the server binary was built without TLS (asked
    of the server itself, once per session: `tls_unsupported_reason`)."""
    _need_redis()
    reason = tls_unsupported_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A server with the restricted user `ACL_USER`; the default user stays the test side's."""
    _need_redis()
    args = ["--user", ACL_USER, *ACL_RULES]
    with RedisServer(tmp_path_factory.mktemp("redis-acl"), extra_args=args) as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[TLSFiles, TLSFiles]:
    """The server's CA and certificates, and an unrelated CA (the wrong one)."""
    directory = tmp_path_factory.mktemp("tls")
    return make_tls_files(directory, name="right"), make_tls_files(directory, name="wrong")


@pytest.fixture(scope="session")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: tuple[TLSFiles, TLSFiles], needs_tls: None
) -> Iterator[RedisServer]:
    """TLS only (`--port 0 --tls-port N`), client certificates not required."""
    with RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=tls_files[0]) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three primaries, no replicas, every slot covered (`cluster_state:ok` on each)."""
    _need_redis()
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def _cluster_session_client(redis_cluster: RedisCluster) -> Iterator[redis.RedisCluster]:
    # One for the session: building a cluster client (slot map, COMMAND table) takes ~25 ms.
    host, port = redis_cluster.addresses[0]
    with redis.RedisCluster(
        host=host,
        port=port,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=no_retry(),
    ) as client:
        yield client


@pytest.fixture
def cluster_client(_cluster_session_client: redis.RedisCluster) -> redis.RedisCluster:
    """A raw redis-py cluster client (str replies, no retries), every primary FLUSHALLed first.

    Shared by the session: do not close it.
    """
    _cluster_session_client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    _cluster_session_client.config_resetstat(target_nodes=redis.RedisCluster.PRIMARIES)
    return _cluster_session_client


@pytest.fixture
def cluster_config(cluster_client: redis.RedisCluster, redis_cluster: RedisCluster) -> CacheConfig:
    """`CacheConfig` of a service on the (flushed) session cluster, through its first node."""
    host, port = redis_cluster.addresses[0]
    return CacheConfig(enabled=True, cluster=True, host=host, port=port)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A standalone server of this test alone: free to kill, pause or restart."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


# --- stores and clocks -------------------------------------------------------------------------

# Tests use round TTLs; a key's remaining time is read back rounded up to this grain, so the few
# milliseconds between a `set` and a `clock.advance` do not count.
_GRAIN_MS = 250
# A key that the emulated clock leaves alive keeps at least this much real time, so the test can
# still read it after the advance (its virtual expiry is tracked separately).
_MIN_REAL_MS = 2000


class RedisStoreView:
    """What tests read from `store` on the "redis"/"cluster" backends, answered by the session
    server or cluster.

    `keys`, `exists` and `set` (raw bytes) mirror `MemoryStore`. `advance_clock(ms)` emulates the
    passing of time for key expiry: every key with a TTL gets its virtual expiry moved `ms` closer,
    and a key whose virtual expiry is reached is deleted. It cannot move `TIME` inside scripts.

    On a cluster client, KEYS goes to every primary (redis-py merges the lists) and single-key
    commands are routed by slot. The primaries' clocks are the same host clock, so one node's
    TIME stands for all.
    """

    def __init__(self, client: redis.Redis | redis.RedisCluster) -> None:
        self.client = client
        self._cluster = isinstance(client, redis.RedisCluster)
        self.virtual_ms = 0
        # key -> (virtual expiry, real PEXPIRETIME we set); a different real expiry means the key
        # was written again since, so its virtual expiry is read afresh.
        self._expiries: dict[str, tuple[int, int]] = {}

    def keys(self, pattern: str = "*") -> list[str]:
        if self._cluster:
            found = self.client.keys(pattern, target_nodes=redis.RedisCluster.PRIMARIES)
        else:
            found = self.client.keys(pattern)
        return [str(key) for key in found]

    def exists(self, key: str) -> bool:
        return bool(self.client.exists(key))

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.client.set(key, value, px=None if ttl is None else round(ttl * 1000))

    def _server_ms(self) -> int:
        seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def advance_clock(self, ms: int) -> None:
        before, self.virtual_ms = self.virtual_ms, self.virtual_ms + ms
        now = self._server_ms()
        for key in self.keys():
            real_expiry = int(self.client.pexpiretime(key))
            if real_expiry < 0:
                self._expiries.pop(key, None)
                continue
            known = self._expiries.get(key)
            if known is not None and known[1] == real_expiry:
                virtual_expiry = known[0]
            else:
                left = max(real_expiry - now, 0)
                virtual_expiry = before + math.ceil(left / _GRAIN_MS) * _GRAIN_MS
            remaining = virtual_expiry - self.virtual_ms
            if remaining <= 0:
                self.client.delete(key)
                self._expiries.pop(key, None)
                continue
            new_real = now + max(remaining, _MIN_REAL_MS)
            self.client.pexpireat(key, new_real)
            self._expiries[key] = (virtual_expiry, new_real)

    def close(self) -> None:
        """Nothing to stop: the session owns the server."""


class Clock:
    """The manual clock of a test store (emulated for key expiry on Redis)."""

    def __init__(self, store: MemoryStore | RedisStoreView) -> None:
        self.store = store

    def advance(self, seconds: float) -> None:
        self.store.advance_clock(round(seconds * 1000))


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking call from the loop's own thread would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SyncProxy:
    """Blocking view of an `AsyncCacheService`: same method names, coroutines run on `runner`."""

    def __init__(self, service: AsyncCacheService, runner: LoopThread) -> None:
        self.service = service
        self.runner = runner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.service, name)
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            def call(*args: Any, **kwargs: Any) -> Any:
                return self.runner.run(attr(*args, **kwargs))

            return call
        return attr

    @contextlib.contextmanager
    def lock(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        with self._context(self.service.lock(*args, **kwargs)) as token:
            yield token

    @contextlib.contextmanager
    def fenced_lock(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self._context(self.service.fenced_lock(*args, **kwargs)) as held:
            yield held

    @contextlib.contextmanager
    def _context(self, manager: contextlib.AbstractAsyncContextManager[T]) -> Iterator[T]:
        """An async context manager of the service, entered and left on the loop."""
        token = self.runner.run(manager.__aenter__())
        try:
            yield token
        except BaseException as exc:
            if not self.runner.run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.runner.run(manager.__aexit__(None, None, None))

    def _decorator(self, name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Decorate a plain function through the async service (which needs an async def)."""
        decorator = getattr(self.service, name)(*args, **kwargs)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            # A function this proxy already decorated (stacked decorators) is awaited directly.
            inner = getattr(fn, "proxied_coroutine", None)

            @functools.wraps(fn)
            async def as_coroutine(*a: Any, **kw: Any) -> Any:
                return await inner(*a, **kw) if inner is not None else fn(*a, **kw)

            decorated = decorator(as_coroutine)

            @functools.wraps(fn)
            def blocking(*a: Any, **kw: Any) -> Any:
                return self.runner.run(decorated(*a, **kw))

            blocking.proxied_coroutine = decorated  # type: ignore[attr-defined]
            return blocking

        return decorate

    def cached(self, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("cached", **kwargs)

    def rate_limited(self, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("rate_limited", **kwargs)

    def with_lock(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("with_lock", *args, **kwargs)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: "memory" (the Rust store), "redis" (the session server) or
    "cluster" (the session's 3-primary cluster)."""
    return str(request.param)


@pytest.fixture
def service_config(request: pytest.FixtureRequest, backend: str) -> CacheConfig | None:
    """The config of the services under test: None on memory, the session server on redis, the
    session cluster on cluster."""
    if backend == "memory":
        return None
    config: CacheConfig = request.getfixturevalue(f"{backend}_config")
    return config


@pytest.fixture
def store(
    request: pytest.FixtureRequest, backend: str, service_config: CacheConfig | None
) -> Iterator[Any]:
    """Memory: a private store on a manual clock, no background sweep. Redis and cluster:
    `RedisStoreView` over the flushed server or cluster."""
    if backend in REDIS_BACKENDS:
        client = "redis_client" if backend == "redis" else "cluster_client"
        yield RedisStoreView(request.getfixturevalue(client))
        return
    memory_store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    yield memory_store
    memory_store.close()


def _service_kwargs(store: Any, config: CacheConfig | None) -> dict[str, Any]:
    return {"store": store} if config is None else {"config": config}


@pytest.fixture
def clock(store: Any) -> Clock:
    return Clock(store)


@pytest.fixture
def sync_cache(store: Any, service_config: CacheConfig | None) -> Iterator[CacheService]:
    service = CacheService(**_service_kwargs(store, service_config))
    yield service
    service.close()


@pytest.fixture
async def async_cache(
    store: Any, service_config: CacheConfig | None
) -> AsyncIterator[AsyncCacheService]:
    service = AsyncCacheService(**_service_kwargs(store, service_config))
    yield service
    await service.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.stop()


@pytest.fixture(params=["sync", "async"])
def cache(
    request: pytest.FixtureRequest, store: Any, service_config: CacheConfig | None
) -> Iterator[Any]:
    """`CacheService`, or `AsyncCacheService` behind `SyncProxy`: one test body for both."""
    kwargs = _service_kwargs(store, service_config)
    if request.param == "sync":
        service = CacheService(**kwargs)
        yield service
        service.close()
        return
    runner = LoopThread()

    async def build() -> AsyncCacheService:  # on the loop that will drive it
        return AsyncCacheService(**kwargs)

    async_service = runner.run(build())
    yield SyncProxy(async_service, runner)
    runner.run(async_service.close())
    runner.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> float:
    """Poll `predicate` every 10 ms; the seconds it took. Fails after `timeout` seconds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


ServiceFactory = Callable[[CacheConfig], Any]


@pytest.fixture(params=["sync", "async"])
def svc(request: pytest.FixtureRequest) -> Iterator[ServiceFactory]:
    """Builds services of one flavour from a config; closes them (and their loop) at the end."""
    made: list[Any] = []
    runner = LoopThread() if request.param == "async" else None

    def make(config: CacheConfig) -> Any:
        if runner is None:
            service: Any = CacheService(config)
        else:

            async def build() -> AsyncCacheService:
                return AsyncCacheService(config)

            service = SyncProxy(runner.run(build()), runner)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()
    if runner is not None:
        runner.stop()
