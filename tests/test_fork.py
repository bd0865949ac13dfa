"""A forked child (gunicorn --preload, Celery prefork, multiprocessing) gets a working store.

Each test forks while other threads of the parent use the store (a detached pattern walk, the
sweeper thread), lets the child run commands and `close()`, and waits for every child with a
deadline: a child still running after it has hung, and is killed and counted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator

import pytest
from cachebolt import CacheConfig, CacheService
from cachebolt._core import MemoryStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")

CHILD_DEADLINE_SECONDS = 20.0


def _fork(child: Callable[[], None]) -> int:
    """Fork; the child runs `child` and exits 0, or 1 with the traceback on stderr."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock the child:
        # exactly what these tests fork into on purpose.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            child()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    return pid


def _outcomes(pids: list[int]) -> dict[str, int]:
    """Wait for every child until the deadline: how many exited 0, failed, or hung (killed)."""
    deadline = time.monotonic() + CHILD_DEADLINE_SECONDS
    waiting = set(pids)
    counts = {"ok": 0, "failed": 0, "hung": 0}
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                waiting.discard(pid)
                counts["ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"] += 1
        time.sleep(0.01)
    for pid in waiting:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["hung"] += 1
    return counts


@pytest.fixture
def busy_store() -> Iterator[MemoryStore]:
    """A store of 100k keys whose shards a detached `del_pattern` walk keeps locking."""
    store = MemoryStore(cleanup_interval_seconds=0.01)
    for i in range(100_000):
        store.set(f"k{i}", b"v", 60.0)
    stop = threading.Event()

    def walk() -> None:
        while not stop.is_set():
            store.del_pattern("no-such-prefix:*")

    walker = threading.Thread(target=walk, daemon=True)
    walker.start()
    yield store
    stop.set()
    walker.join()
    store.close()


def test_children_forked_during_a_pattern_walk_and_a_sweep_never_hang(
    busy_store: MemoryStore,
) -> None:
    def child() -> None:
        assert busy_store.get("k1") == b"v"
        busy_store.set("child", b"x", 1.0)
        assert busy_store.get("child") == b"x"
        busy_store.close()

    pids = []
    for _ in range(60):
        pids.append(_fork(child))
        time.sleep(0.002)  # fork at different points of the walk
    assert _outcomes(pids) == {"ok": 60, "failed": 0, "hung": 0}
    assert busy_store.get("k1") == b"v"  # the parent goes on too


def test_a_child_expires_keys_on_its_own() -> None:
    store = MemoryStore(cleanup_interval_seconds=0.02)

    def child() -> None:
        for i in range(1000):
            store.set(f"t{i}", b"v", 0.05)
        deadline = time.monotonic() + 10.0
        # `expired` counts removals: `len()` and stats()["keys"] skip expired keys unswept.
        while store.stats()["expired"] < 1000 and time.monotonic() < deadline:
            time.sleep(0.02)
        removed = store.stats()["expired"]
        assert removed == 1000, f"{1000 - removed} expired keys still stored: no sweeper"
        store.close()

    try:
        assert _outcomes([_fork(child)]) == {"ok": 1, "failed": 0, "hung": 0}
    finally:
        store.close()


def test_close_right_after_construction_in_a_child() -> None:
    store = MemoryStore(cleanup_interval_seconds=0.01)
    try:
        assert _outcomes([_fork(store.close)]) == {"ok": 1, "failed": 0, "hung": 0}
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["memory", "redis"])
def test_a_service_made_before_the_fork_works_and_closes_in_the_child(
    mode: str, request: pytest.FixtureRequest
) -> None:
    config = request.getfixturevalue("redis_config") if mode == "redis" else CacheConfig()
    cache = CacheService(config)
    cache.set("before", {"n": 1})

    def child() -> None:
        assert cache.get("before") == {"n": 1}
        cache.set("in-child", 2, 5)
        assert cache.get("in-child") == 2
        with cache.lock(f"fork-lock:{os.getpid()}", 5_000):
            pass
        cache.close()

    try:
        assert _outcomes([_fork(child) for _ in range(5)]) == {"ok": 5, "failed": 0, "hung": 0}
        assert cache.get("in-child") == (2 if mode == "redis" else None)
    finally:
        cache.close()
