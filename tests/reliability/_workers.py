"""Worker processes of the lock, rate-limit and stampede reliability tests (forkserver).

Each worker builds its own blocking `CacheService` on the Redis under test, with long timeouts
and the fail-closed fallback policies: a slow moment on a loaded machine must neither trip the
breaker into per-process memory locks (which would be a false overlap) nor admit a hit in
memory. Every worker reports `fallback_calls`, which the tests require to be 0. Results go back
through a `multiprocessing` queue as plain tuples and lists.

`run_workers` starts N workers (that meet at a shared barrier) and collects one result per
worker; a worker that raises reports the traceback, which fails the test with it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import redis
from cachebolt import CacheConfig, CacheService

# forkserver: one clean single-threaded server process (started on first use, with this module
# and so cachebolt and redis-py imported) forks each worker, so a worker starts in milliseconds
# instead of the ~1 s of a spawned interpreter, and never inherits the test run's threads.
_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload([__name__])
# Generous for a 2-core machine running other tests: a worker never waits this long normally.
RESULT_TIMEOUT = 600.0


def service(url: str) -> CacheService:
    """A blocking service on `url` that never serves a lock or a limit from memory."""
    return CacheService(
        CacheConfig(
            enabled=True,
            url=url,
            connect_timeout_ms=10_000,
            command_timeout_ms=10_000,
            lock_fallback="fail_closed",
            rate_limit_fallback="fail_closed",
        )
    )


def _entry(target: Callable[..., Any], results: Any, index: int, args: tuple[Any, ...]) -> None:
    try:
        results.put((index, "ok", target(*args)))
    except BaseException:
        results.put((index, "error", traceback.format_exc()))


def run_workers(target: Callable[..., Any], args: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Run `target(*args[i])` in one worker process each; their return values, in order.

    Workers that must begin together share a `new_barrier(n)` among their arguments and wait
    at it after their imports and connections.
    """
    results = _CTX.Queue()
    processes = [
        _CTX.Process(target=_entry, args=(target, results, i, a), daemon=True)
        for i, a in enumerate(args)
    ]
    for process in processes:
        process.start()
    try:
        out: dict[int, Any] = {}
        errors = []
        for _ in processes:
            index, status, value = results.get(timeout=RESULT_TIMEOUT)
            if status == "ok":
                out[index] = value
            else:
                errors.append(value)
        if errors:
            raise AssertionError("a worker failed:\n" + "\n".join(errors))
        return [out[i] for i in range(len(processes))]
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():  # only our own child, by its handle
                process.kill()
                process.join(5)


def run_threads(count: int, target: Callable[[int], object]) -> None:
    """Run `target(0)` ... `target(count - 1)` in threads and wait for all of them."""
    pool = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def new_barrier(parties: int) -> Any:
    """A barrier that worker processes can share."""
    return _CTX.Barrier(parties)


# --- 1. mutual exclusion -------------------------------------------------------------------------


def exclusion_worker(
    url: str, lock_key: str, counter_key: str, rounds: int, start: Any
) -> dict[str, Any]:
    """After the start barrier, `rounds` times: lock, INCR the server-side counter, note the
    interval, DECR, unlock.

    Returns the hold intervals (monotonic ns, one clock per host), the acquire latencies (s),
    the largest counter value seen inside, and `fallback_calls`.
    """
    cache = service(url)
    raw = redis.Redis.from_url(url, socket_timeout=30)
    cache.ping()  # connected before the start
    start.wait(RESULT_TIMEOUT)
    intervals: list[tuple[int, int]] = []
    latencies: list[float] = []
    max_inside = 0
    for _ in range(rounds):
        asked = time.monotonic()
        with cache.lock(lock_key, 30_000, wait_seconds=RESULT_TIMEOUT):
            entered = time.monotonic_ns()
            latencies.append(time.monotonic() - asked)
            max_inside = max(max_inside, int(raw.incr(counter_key)))
            raw.decr(counter_key)
            left = time.monotonic_ns()
        intervals.append((entered, left))
    fallback = cache.stats()["fallback_calls"]
    cache.close()
    raw.close()
    return {
        "intervals": intervals,
        "latencies": latencies,
        "max_inside": max_inside,
        "fallback_calls": fallback,
        "pid": os.getpid(),
    }


# --- 2. thundering start -------------------------------------------------------------------------


def herd_worker(url: str, lock_key: str, rounds: int, barrier: Any) -> dict[str, Any]:
    """Each round: wait at the barrier (all released at once), try the lock once, wait again;
    the winner releases it, and a third barrier closes the round. Returns the wins per round."""
    cache = service(url)
    cache.ping()
    wins: list[bool] = []
    for _ in range(rounds):
        barrier.wait(RESULT_TIMEOUT)
        token = cache.acquire_lock(lock_key, 60_000)
        wins.append(token is not None)
        barrier.wait(RESULT_TIMEOUT)
        if token is not None and not cache.release_lock(lock_key, token):
            raise AssertionError("the winner could not release its lock")
        barrier.wait(RESULT_TIMEOUT)
    fallback = cache.stats()["fallback_calls"]
    cache.close()
    return {"wins": wins, "fallback_calls": fallback}


# --- 3 and 5. a holder paused past its TTL -------------------------------------------------------


def paused_holder(url: str, lock_key: str, rounds: int, fenced: bool, conn: Any) -> None:
    """The holder that the parent SIGSTOPs: per round (on "next"), take the lock (fenced or
    not) for 100 ms, send ("held", token, fence), wait for "go" (the parent stops and resumes
    this process in between), then try release and extend, and send ("after", released,
    extended, fence) for the parent's resource."""
    cache = service(url)
    cache.ping()
    try:
        for _ in range(rounds):
            if conn.recv() != "next":
                return
            if fenced:
                held = cache.acquire_fenced_lock(lock_key, 100)
                token, fence = (None, 0) if held is None else held
            else:
                token, fence = cache.acquire_lock(lock_key, 100), 0
            if token is None:
                conn.send(("error", "the paused holder found the lock held"))
                return
            conn.send(("held", token, fence))
            if conn.recv() != "go":
                return
            released = cache.release_lock(lock_key, token)
            extended = cache.extend_lock(lock_key, token, 60_000)
            conn.send(("after", released, extended, fence))
        conn.send(("done", cache.stats()["fallback_calls"]))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        cache.close()


def start_paused_holder(url: str, lock_key: str, rounds: int, fenced: bool) -> tuple[Any, Any]:
    """Start `paused_holder` in a worker process: (process, the parent's end of its pipe)."""
    parent, child = _CTX.Pipe()
    process = _CTX.Process(
        target=paused_holder, args=(url, lock_key, rounds, fenced, child), daemon=True
    )
    process.start()
    child.close()
    return process, parent


# --- 6. rate-limit exactness ---------------------------------------------------------------------


def limit_worker(
    url: str,
    key: str,
    limit: int,
    window: float,
    algorithm: str,
    threads: int,
    hits: int,
    start: Any,
) -> dict[str, int]:
    """`threads` threads x `hits` hits on one key, all starting at once; the admitted count."""
    cache = service(url)
    cache.ping()
    admitted = [0] * threads
    barrier = threading.Barrier(threads)

    def hammer(index: int) -> None:
        barrier.wait()
        for _ in range(hits):
            if cache.hit_rate_limit(key, limit, window, algorithm=algorithm):
                admitted[index] += 1

    start.wait(RESULT_TIMEOUT)
    run_threads(threads, hammer)
    fallback = cache.stats()["fallback_calls"]
    cache.close()
    return {"admitted": sum(admitted), "fallback_calls": fallback}


# --- 8. clock skew -------------------------------------------------------------------------------


def skewed_worker(
    url: str, key: str, limit: int, window: float, hits: int, skew_seconds: float, go: Any
) -> dict[str, Any]:
    """Hit one key `hits` times with this process's wall clock moved by `skew_seconds`
    (time.time and time.time_ns patched), after waiting for `go`."""
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + skew_seconds  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() + int(skew_seconds * 1e9)  # type: ignore[assignment]
    cache = service(url)
    cache.ping()
    go.wait(RESULT_TIMEOUT)
    admitted = sum(bool(cache.hit_rate_limit(key, limit, window)) for _ in range(hits))
    fallback = cache.stats()["fallback_calls"]
    cache.close()
    return {"admitted": admitted, "fallback_calls": fallback, "wall": time.time()}


# --- 14. get_or_set across processes -------------------------------------------------------------


def stampede_worker(url: str, key: str, threads: int, calls_key: str, start: Any) -> list[Any]:
    """`threads` threads call get_or_set on one cold key; the function counts its calls in
    Redis (INCR) and takes 0.5 s. Returns every thread's value."""
    cache = service(url)
    cache.ping()
    raw = redis.Redis.from_url(url, socket_timeout=30)
    values: list[Any] = [None] * threads
    barrier = threading.Barrier(threads)

    def compute() -> dict[str, int]:
        raw.incr(calls_key)
        time.sleep(0.5)  # the slow function (not a synchronisation)
        return {"pid": os.getpid()}

    def call(index: int) -> None:
        barrier.wait()
        values[index] = cache.get_or_set(key, 60, compute)

    start.wait(RESULT_TIMEOUT)
    run_threads(threads, call)
    cache.close()
    raw.close()
    return values
