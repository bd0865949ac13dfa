"""`get_or_set` stampede: 32 callers on a cold key with a slow function.

Guaranteed: within one service (one process), concurrent misses of a key call the function once
and share its outcome; a raising function caches nothing and every waiter gets the error (none
hangs). Not guaranteed: coordination between processes - each process computes once, so N
processes on one Redis compute up to N times (the figure reports how many did).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

from ._figures import figure, size
from ._workers import new_barrier, run_workers, stampede_worker

CALLERS = 32
SLOW_SECONDS = 1.0  # the slow function's own duration (not a synchronisation)


def stampede(
    cache: Any, key: str, fn: Any, arrived: threading.Event
) -> tuple[list[Any], list[BaseException], float]:
    """`CALLERS` threads call get_or_set(key, 60, fn) together: (values, errors, seconds).

    `arrived` is set when the last thread is about to call.
    """
    values: list[Any] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    barrier = threading.Barrier(CALLERS, action=arrived.set)

    def call() -> None:
        cache.get("warm-up")  # the thread's Redis connection is made before the start
        barrier.wait()
        try:
            value = cache.get_or_set(key, 60, fn)
        except Exception as exc:
            with guard:
                errors.append(exc)
        else:
            with guard:
                values.append(value)

    started = time.monotonic()
    pool = [threading.Thread(target=call) for _ in range(CALLERS)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert not any(thread.is_alive() for thread in pool), "a caller hangs"
    return values, errors, time.monotonic() - started


def slow_function(
    params: dict[str, Any], calls: list[int], outcome: Any, arrived: threading.Event
) -> Any:
    """The slow function: returns (or raises) `outcome` `SLOW_SECONDS` after every caller has
    passed the start barrier, so on a loaded machine too each caller reaches get_or_set while
    the first computation runs. A coroutine function for the asyncio service (a plain one would
    block its event loop, so callers arriving meanwhile could not even join the computation)."""

    def finish() -> Any:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    if params["cache"] == "async":

        async def slow_async() -> Any:
            calls.append(1)
            while not arrived.is_set():
                await asyncio.sleep(0.005)
            await asyncio.sleep(SLOW_SECONDS)
            return finish()

        return slow_async

    def slow() -> Any:
        calls.append(1)
        arrived.wait(60)
        time.sleep(SLOW_SECONDS)
        return finish()

    return slow


def test_one_call_per_process(request: pytest.FixtureRequest, cache: Any) -> None:
    params = request.node.callspec.params
    calls: list[int] = []
    arrived = threading.Event()
    slow = slow_function(params, calls, {"answer": 42}, arrived)
    values, errors, _ = stampede(cache, "cold", slow, arrived)
    figure(
        f"stampede.calls.{params['backend']}.{params['cache']}", callers=CALLERS, calls=len(calls)
    )
    assert errors == []
    assert values == [{"answer": 42}] * CALLERS
    assert len(calls) == 1


class Boom(Exception):
    pass


def test_a_raising_function_caches_nothing_and_releases_every_waiter(
    request: pytest.FixtureRequest, cache: Any
) -> None:
    params = request.node.callspec.params
    calls: list[int] = []
    arrived = threading.Event()
    failing = slow_function(params, calls, Boom("no value"), arrived)
    values, errors, seconds = stampede(cache, "cold", failing, arrived)
    figure(
        f"stampede.raising.{params['backend']}.{params['cache']}",
        callers=CALLERS,
        calls=len(calls),
        errors=len(errors),
        hung=0,
        seconds=round(seconds, 2),
    )
    assert values == []
    assert len(errors) == CALLERS and all(isinstance(e, Boom) for e in errors)
    assert len(calls) == 1
    assert cache.get("cold", default="missing") == "missing"
    # Nothing cached, nothing stuck: the next call computes afresh.
    assert cache.get_or_set("cold", 60, lambda: "fresh") == "fresh"


def test_processes_on_redis_each_compute_once(redis_url: str, redis_client: redis.Redis) -> None:
    processes = size(2, 4)
    barrier = new_barrier(processes)
    args = [(redis_url, "cold", CALLERS // processes, "stampede:calls", barrier)] * processes
    results = run_workers(stampede_worker, args)
    calls = int(redis_client.get("stampede:calls") or 0)
    figure("stampede.across_processes", processes=processes, callers=CALLERS, calls=calls)
    # Within a process every caller got that process's one value.
    for values in results:
        assert len(values) == CALLERS // processes and len({v["pid"] for v in values}) == 1
    assert 1 <= calls <= processes  # once per process at most; no cross-process guarantee
