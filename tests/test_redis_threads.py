"""The blocking Redis backend gives each thread its own connection of one shared pool.

A thread's commands go through its own single-connection client: one pool checkout when the
thread starts, none per command (`cachebolt._redis_clients.CallerClients`). These tests count the
checkouts and the server's clients, and check that `close()`, a thread's end and a connection
the server dropped while idle all leave nothing behind.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

from _servers import RedisServer
from cachebolt._redis_errors import BackendUnavailable
from cachebolt._sync.redis_backend import RedisBackend
from cachebolt.config import CacheConfig
from conftest import wait_until

THREADS = 8
CALLS = 50


def config_for(server: RedisServer, **kwargs: Any) -> CacheConfig:
    return CacheConfig(enabled=True, host=server.host, port=server.port, **kwargs)


def cachebolt_clients(server: RedisServer) -> int:
    """Connections the server has from a client named "cachebolt"."""
    with server.client() as admin:
        return sum(1 for c in admin.client_list() if c.get("name") == "cachebolt")


class CountingPool:
    """Counts `get_connection` calls of `backend`'s pool (every checkout, from any client)."""

    def __init__(self, backend: RedisBackend) -> None:
        self.pool = backend.client.connection_pool
        self.checkouts = 0
        self._lock = threading.Lock()
        original = self.pool.get_connection

        def get_connection(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.checkouts += 1
            return original(*args, **kwargs)

        self.pool.get_connection = get_connection  # type: ignore[method-assign]

    def in_use(self) -> int:
        return len(self.pool._in_use_connections)


def run_threads(backend: RedisBackend, at_peak: Any = None) -> list[BaseException]:
    """THREADS threads, each CALLS rounds of plain commands and scripts, all alive at once.

    `at_peak()` runs once every thread has made its calls and before any of them ends.
    """
    errors: list[BaseException] = []
    done = threading.Barrier(THREADS + 1)
    leave = threading.Event()

    def work(n: int) -> None:
        try:
            for i in range(CALLS):
                backend.set(f"k{n}", str(i).encode())
                assert backend.get(f"k{n}") == str(i).encode()
                assert backend.rate_limit(f"r{n}", 1000, 60)[0]  # a script, on this thread
                token = backend.acquire_lock(f"l{n}", 10_000)
                assert token is not None
                assert backend.release_lock(f"l{n}", token)  # another script
        except BaseException as exc:
            errors.append(exc)
        done.wait()
        leave.wait()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    done.wait()
    try:
        if at_peak is not None:
            at_peak()
    finally:
        leave.set()
        for thread in threads:
            thread.join()
    return errors


def test_n_threads_use_n_connections_without_a_checkout_per_command(
    private_redis: RedisServer,
) -> None:
    backend = RedisBackend(config_for(private_redis))
    pool = CountingPool(backend)
    seen: dict[str, int] = {}

    def at_peak() -> None:
        seen["checkouts"] = pool.checkouts
        seen["in_use"] = pool.in_use()
        seen["server"] = cachebolt_clients(private_redis)

    try:
        errors = run_threads(backend, at_peak)
        assert errors == []
        # 5 * CALLS commands per thread, one checkout per thread: its connection, held.
        assert seen == {"checkouts": THREADS, "in_use": THREADS, "server": THREADS}
        # The main thread is one more thread: one more connection, then none per command.
        backend.set("main", b"1")
        assert backend.get("main") == b"1"
        assert pool.checkouts == THREADS + 1
    finally:
        backend.close()
    # close() gives every connection back and disconnects them all.
    assert pool.in_use() == 0
    wait_until(lambda: cachebolt_clients(private_redis) == 0)
    # The backend works after close(), on a fresh client.
    assert backend.get("main") == b"1"
    backend.close()


def test_a_thread_that_ends_gives_its_connection_back(private_redis: RedisServer) -> None:
    backend = RedisBackend(config_for(private_redis))
    pool = CountingPool(backend)
    try:
        assert run_threads(backend) == []
        gc.collect()  # the ended threads' clients release their connections when collected
        assert pool.in_use() == 0
        assert len(pool.pool._available_connections) == THREADS
        # The next threads reuse them: no new connection on the server.
        assert run_threads(backend) == []
        assert cachebolt_clients(private_redis) == THREADS
    finally:
        backend.close()


def test_a_connection_dropped_while_idle_reconnects_without_an_error(
    private_redis: RedisServer,
) -> None:
    backend = RedisBackend(config_for(private_redis))
    try:
        backend.set("k", b"v")
        with private_redis.client() as admin:
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        time.sleep(0.05)  # idle longer than the check's threshold (10 ms)
        assert backend.get("k") == b"v"  # polled, found closed, connected again
    finally:
        backend.close()


def test_a_failed_command_raises_and_the_next_one_reconnects(private_redis: RedisServer) -> None:
    backend = RedisBackend(config_for(private_redis, command_timeout_ms=200))
    try:
        backend.set("k", b"v")
        private_redis.pause()
        try:
            started = time.perf_counter()
            try:
                backend.get("k")
            except BackendUnavailable:
                pass
            else:  # pragma: no cover
                raise AssertionError("a frozen server answered")
            assert time.perf_counter() - started < 0.5
        finally:
            private_redis.resume()
        # The timed-out connection was dropped: no late reply is read as this answer.
        backend.set("k", b"w")
        assert backend.get("k") == b"w"
    finally:
        backend.close()
