"""Connections the server closes, and `close()` while calls are in flight, on real servers.

An idle connection closed by the server (CLIENT KILL, the server's idle `timeout`, a proxy or NAT
dropping idle flows) is found before the next command is written on it, and that command runs on
a new connection: the value is read, the lock released, the breaker stays closed. Both services,
standalone and cluster; the session servers' `timeout` is restored after each test.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from _servers import RedisCluster, RedisServer
from cachebolt import AsyncCacheService, CacheConfig, CacheError, CacheService
from cachebolt import _redis_clients as clients
from conftest import LoopThread, ServiceFactory, wait_until
from test_faults import async_op, sync_op

# Redis checks idle clients in its cron: a 1 s timeout has closed them well within 2.5 s.
IDLE_TIMEOUT_SECONDS = 1
IDLE_WAIT_SECONDS = 2.5
# Past the idle time after which a connection is checked before its next command.
IDLE_CHECK_WAIT_SECONDS = 0.05


class Nodes:
    """Every node a service under test talks to; each admin call on a new connection (the
    server's idle timeout closes the admin's idle connections too)."""

    def __init__(self, config: CacheConfig, servers: list[RedisServer]) -> None:
        self.config = config
        self.servers = servers

    def each(self, command: Callable[[redis.Redis], Any]) -> list[Any]:
        results = []
        for server in self.servers:
            with server.client() as admin:
                results.append(command(admin))
        return results

    def kill_clients(self) -> None:
        """CLIENT KILL every normal client but the admin's own, on every node."""
        self.each(lambda admin: admin.client_kill_filter(_type="normal", skipme=True))
        time.sleep(IDLE_CHECK_WAIT_SECONDS)

    def idle_timeout(self) -> None:
        """Let every node close the connections idle for IDLE_TIMEOUT_SECONDS, then wait."""
        self.each(lambda admin: admin.config_set("timeout", IDLE_TIMEOUT_SECONDS))
        time.sleep(IDLE_WAIT_SECONDS)
        self.each(lambda admin: admin.config_set("timeout", 0))

    def lock_keys(self) -> list[Any]:
        return [key for keys in self.each(lambda admin: admin.keys("lock:*")) for key in keys]

    def close(self) -> None:
        self.each(lambda admin: admin.config_set("timeout", 0))


@pytest.fixture(params=["redis", "cluster"])
def nodes(request: pytest.FixtureRequest) -> Iterator[Nodes]:
    """The session server (flushed) or every node of the session cluster (flushed)."""
    config: CacheConfig = request.getfixturevalue(f"{request.param}_config")
    if request.param == "redis":
        servers = [request.getfixturevalue("redis_server")]
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        servers = cluster.nodes
    made = Nodes(config, servers)
    yield made
    made.close()


SERVER_CLOSES: dict[str, Callable[[Nodes], None]] = {
    "client_kill": Nodes.kill_clients,
    "idle_timeout": Nodes.idle_timeout,
}


@pytest.mark.parametrize("how", sorted(SERVER_CLOSES))
def test_idle_connections_closed_by_the_server_are_replaced(
    svc: ServiceFactory, nodes: Nodes, how: str
) -> None:
    cache = svc(nodes.config)
    cache.set("k", {"v": 1})
    tokens = [cache.acquire_lock(f"job{i}", 60_000) for i in range(5)]
    assert all(tokens)

    SERVER_CLOSES[how](nodes)

    assert cache.get("k") == {"v": 1}
    assert [cache.release_lock(f"job{i}", t) for i, t in enumerate(tokens)] == [True] * 5
    assert nodes.lock_keys() == []
    cache.set("k", 2)
    assert cache.get("k") == 2
    assert cache.is_redis_available() is True
    assert cache.stats()["fallback_calls"] == 0


@pytest.mark.parametrize("how", sorted(SERVER_CLOSES))
def test_many_idle_asyncio_connections_closed_by_the_server(
    loop_thread: LoopThread, nodes: Nodes, how: str
) -> None:
    """Concurrent tasks leave several connections in the pool; each is replaced on its next use."""

    async def start() -> tuple[AsyncCacheService, list[str | None]]:
        cache = AsyncCacheService(nodes.config)
        await cache.set("k", "v")
        tokens = await asyncio.gather(*(cache.acquire_lock(f"job{i}", 60_000) for i in range(20)))
        return cache, list(tokens)

    async def finish(cache: AsyncCacheService, tokens: list[str | None]) -> list[Any]:
        values = await asyncio.gather(*(cache.get("k") for _ in range(20)))
        released = await asyncio.gather(
            *(cache.release_lock(f"job{i}", t) for i, t in enumerate(tokens) if t is not None)
        )
        stats = await cache.stats()
        return [values, released, cache.is_redis_available(), stats["fallback_calls"]]

    cache, tokens = loop_thread.run(start())
    try:
        assert all(tokens)
        SERVER_CLOSES[how](nodes)
        values, released, available, fallback_calls = loop_thread.run(finish(cache, tokens))
    finally:
        loop_thread.run(cache.close())
    assert values == ["v"] * 20
    assert released == [True] * 20 and nodes.lock_keys() == []
    assert available is True and fallback_calls == 0


def test_a_close_the_event_loop_has_not_seen_yet_is_found(
    loop_thread: LoopThread, nodes: Nodes
) -> None:
    """The server's FIN is on the socket but the loop has not run since: the socket is asked."""

    async def scenario() -> list[Any]:
        async with AsyncCacheService(nodes.config) as cache:
            await cache.set("k", "v")
            token = await cache.acquire_lock("job", 60_000)
            # Blocking calls: the loop does not run between the kill and the next command.
            nodes.kill_clients()
            value = await cache.get("k")
            released = await cache.release_lock("job", token or "")
            return [value, released, (await cache.stats())["fallback_calls"]]

    assert loop_thread.run(scenario()) == ["v", True, 0]
    assert nodes.lock_keys() == []


def kill_clients(server: RedisServer) -> None:
    with server.client() as admin:
        admin.client_kill_filter(_type="normal", skipme=True)


def test_a_write_on_a_reset_connection_is_sent_again_blocking(
    redis_config: CacheConfig, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before use missed the close; the write then fails, and nothing reached Redis."""
    monkeypatch.setattr(clients, "_drop_if_stale", lambda conn: None)
    with CacheService(redis_config) as cache:
        cache.set("k", "v")
        conn = cache._fallback._primary._clients._callers._local.connection  # type: ignore[attr-defined]
        kill_clients(redis_server)
        conn._sock.sendall(b"PING\r\n")  # answered by a reset: the next write fails
        time.sleep(0.05)
        assert cache.get("k") == "v"
        assert cache.release_lock("job", cache.acquire_lock("job", 5_000) or "") is True
        assert cache.stats()["fallback_calls"] == 0


def test_a_write_on_a_reset_connection_is_sent_again_asyncio(
    loop_thread: LoopThread, redis_server: RedisServer
) -> None:
    """`_async_send` on a connection reset since its last use (the pool's own check missed)."""

    async def scenario() -> Any:
        conn = redis.asyncio.Connection(host=redis_server.host, port=redis_server.port)
        await conn.connect()
        kill_clients(redis_server)
        conn._writer.write(b"PING\r\n")  # answered by a reset: the next write fails
        await asyncio.sleep(0.05)
        await clients._async_send(conn, conn.pack_command("GET", "absent"))
        reply = await conn.read_response()
        await conn.disconnect()
        return reply

    assert loop_thread.run(scenario()) is None


# --- close() while calls are in flight ----------------------------------------------------------

WORKERS = 8


def service_connections(nodes: Nodes) -> int:
    """Connections named "cachebolt" (every connection a service makes) on every node."""
    lists = nodes.each(lambda admin: admin.client_list())
    return sum(1 for clients_ in lists for client in clients_ if client["name"] == "cachebolt")


@pytest.mark.parametrize("run", range(3))
def test_close_while_threads_call(nodes: Nodes, run: int) -> None:
    """In-flight calls answer or raise a CacheError; the final close leaves no connection."""
    cache = CacheService(nodes.config)
    raw: list[BaseException] = []
    calls = [0] * WORKERS
    stop = threading.Event()

    def work(worker: int) -> None:
        rng = random.Random(run * WORKERS + worker)
        while not stop.is_set():
            try:
                sync_op(cache, rng, worker)
            except CacheError:
                pass
            except BaseException as exc:
                raw.append(exc)
            calls[worker] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    cache.close()  # mid-run: the threads keep calling
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(10)
    available = cache.is_redis_available()  # close() is no outage: calls after it go to Redis
    cache.close()
    assert raw == []
    assert all(calls) and available is True
    wait_until(lambda: service_connections(nodes) == 0, timeout=2)


@pytest.mark.parametrize("run", range(3))
def test_aclose_while_tasks_call(loop_thread: LoopThread, nodes: Nodes, run: int) -> None:
    async def scenario() -> tuple[list[BaseException], list[int], bool]:
        cache = AsyncCacheService(nodes.config)
        raw: list[BaseException] = []
        calls = [0] * WORKERS
        stop = asyncio.Event()

        async def work(worker: int) -> None:
            rng = random.Random(run * WORKERS + worker)
            while not stop.is_set():
                try:
                    await async_op(cache, rng, worker)
                except CacheError:
                    pass
                except Exception as exc:
                    raw.append(exc)
                calls[worker] += 1
                await asyncio.sleep(0)  # memory answers without yielding to the loop

        tasks = [asyncio.create_task(work(i)) for i in range(WORKERS)]
        await asyncio.sleep(0.3)
        await cache.close()  # mid-run: the tasks keep calling
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*tasks)
        available = cache.is_redis_available()  # close() is no outage: calls after it go to Redis
        await cache.close()
        return raw, calls, available

    raw, calls, available = loop_thread.run(scenario())
    assert raw == []
    assert all(calls) and available is True
    wait_until(lambda: service_connections(nodes) == 0, timeout=2)
