"""Faults: a chaos run against a Redis that is killed, frozen, firewalled and whose clients are
killed (item 11), and the worst call time against a black-holed Redis with default settings (12).

The Redis under attack lives in a network namespace the test creates (`_netns.py`), so a DROP rule
there black-holes it for real (connects and commands get no answer at all). A machine where the
namespace cannot be made fails these tests with the reason: they do not skip.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cachebolt import CacheConfig, CacheService
from cachebolt._constants import DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS
from conftest import ServiceFactory, wait_until

from ._chaos_worker import work
from ._figures import figure, size
from ._netns import NetNamespace, NetnsRedisServer, NetnsUnavailable

# A loaded 2-core machine delays a timer by up to this much: the bounds below are the documented
# timeout plus this scheduling slack (redis-py's own defaults would take 4 s or a minute).
SLACK = 0.5
RECOVERY_BOUND = 5.0
DEGRADED_P99_BOUND = 0.1  # no per-call timeout while the breaker is open (the timeout is 0.5 s)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


@pytest.fixture
def netns() -> Iterator[NetNamespace]:
    try:
        namespace = NetNamespace()
    except NetnsUnavailable as exc:
        pytest.fail(f"cannot inject network faults on this machine: {exc}")
    with namespace:
        yield namespace


@pytest.fixture
def ns_redis(tmp_path: Path, netns: NetNamespace) -> Iterator[NetnsRedisServer]:
    server = NetnsRedisServer(tmp_path / "redis", netns)
    with server:
        yield server
        netns.undrop()
        if server.running:
            server.resume()


# --- 11. chaos run ---------------------------------------------------------------------------


def _kill_clients(server: NetnsRedisServer) -> None:
    with server.client() as admin:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
        admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


def test_chaos_run(tmp_path: Path, ns_redis: NetnsRedisServer, netns: NetNamespace) -> None:
    workers = size(2, 4)
    down, up = size(15, 60) / 15 * 1.0, size(15, 60) / 15 * 2.6  # seconds per phase
    config = CacheConfig(
        enabled=True,
        host=ns_redis.host,
        port=ns_redis.port,
        key_prefix="chaos:",
        connect_timeout_ms=500,
        command_timeout_ms=500,
    )
    faults: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("kill", ns_redis.kill, ns_redis.restart),
        ("freeze", ns_redis.pause, ns_redis.resume),
        ("drop", lambda: netns.drop(ns_redis.port), netns.undrop),
        ("client-kill", lambda: _kill_clients(ns_redis), lambda: None),
    ]
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    readies = [context.Event() for _ in range(workers)]
    outs = [str(tmp_path / f"worker{i}.json") for i in range(workers)]
    processes = [
        context.Process(target=work, args=(config, i, readies[i], stop, outs[i]))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    back_at: dict[str, float] = {}
    try:
        for ready in readies:
            assert ready.wait(60), "a worker did not start"
        time.sleep(up)  # traffic on Redis before the first fault
        for name, inject, heal in faults:
            inject()
            time.sleep(down)
            heal()
            back_at[name] = time.monotonic()
            time.sleep(up)
    finally:
        stop.set()
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]

    results = [json.loads(Path(out).read_text()) for out in outs]
    errors = [error for r in results for error in r["errors"]]
    stale = [line for r in results for line in r["stale"]]
    records = [rec for r in results for rec in r["records"]]
    degraded = [end - start for start, end, where in records if where == 2]
    tripping = [end - start for start, end, where in records if where == 1]
    recovery: dict[str, float] = {}
    for name, at in back_at.items():
        worst = 0.0
        for r in results:
            served = [end for start, end, where in r["records"] if where == 0 and start >= at]
            worst = max(worst, (min(served) - at) if served else float("inf"))
        recovery[name] = worst
    figure(
        "faults.chaos",
        workers=workers,
        calls=len(records),
        exceptions=len(errors),
        degraded_calls=len(degraded),
        degraded_p99_ms=round(p99(degraded) * 1000, 2),
        tripping_max_ms=round(max(tripping, default=0) * 1000, 1),
        recovery_s={name: round(s, 2) for name, s in recovery.items()},
        stale_reads=len(stale),
    )
    assert errors == []
    assert stale == []
    assert len(degraded) > 100, "the faults did not put the workers on memory"
    assert p99(degraded) < DEGRADED_P99_BOUND
    assert max(recovery.values()) <= RECOVERY_BOUND, recovery


# --- 12. worst call time against a black hole ------------------------------------------------


class SilentListener:
    """A TCP port that completes handshakes (the kernel's backlog) but never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


def test_a_timed_out_write_never_lands_after_newer_ones(
    ns_redis: NetnsRedisServer, netns: NetNamespace, svc: ServiceFactory
) -> None:
    # A `set` that timed out behind a firewall DROP is given up. Its bytes must not reach
    # Redis when the path heals (the kernel would retransmit them from the closed socket),
    # after the `set` the service made since on a new connection.
    config = CacheConfig(
        enabled=True, host=ns_redis.host, port=ns_redis.port, command_timeout_ms=300
    )
    cache = svc(config)
    rounds = size(3, 10)
    late = 0
    for n in range(rounds):
        cache.set("k", {"v": f"{n}:before"})
        netns.drop(ns_redis.port)
        cache.set("k", {"v": f"{n}:timed out"})  # served by memory after the timeout
        assert not cache.is_redis_available()
        netns.undrop()
        wait_until(cache.is_redis_available, timeout=RECOVERY_BOUND)
        cache.set("k", {"v": f"{n}:after"})
        time.sleep(2.5)  # longer than the next retransmission of the given-up segment
        with ns_redis.client() as raw:
            if json.loads(raw.get("k")) != {"v": f"{n}:after"}:
                late += 1
    figure("faults.late_delivery", rounds=rounds, timed_out_writes_landing_late=late)
    assert late == 0


def _timed_calls(cache: CacheService, rounds: int) -> list[float]:
    """Every method family `rounds` times from 4 threads; the latency of each call."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        for i in range(rounds):
            for call in (
                lambda: cache.get(f"k{worker}"),
                lambda i=i: cache.set(f"k{worker}", i),
                lambda: cache.incr("n"),
                lambda: cache.acquire_lock(f"l{worker}", 1000),
                lambda: cache.check_rate_limit("r", 100, 60),
                lambda i=i: cache.sadd("s", str(i)),
                lambda i=i: cache.publish("c", i),
            ):
                started = time.monotonic()
                try:
                    call()
                except BaseException as exc:
                    errors.append(exc)
                with lock:
                    latencies.append(time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return latencies


@pytest.mark.parametrize("hole", ["firewall DROP", "silent listener"])
def test_black_hole_worst_call_time(
    hole: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    connect_s = DEFAULT_CONNECT_TIMEOUT_MS / 1000
    command_s = DEFAULT_COMMAND_TIMEOUT_MS / 1000
    if hole == "firewall DROP":
        server: NetnsRedisServer = request.getfixturevalue("ns_redis")
        netns: NetNamespace = request.getfixturevalue("netns")
        host, port = server.host, server.port
        black_hole, heal = (lambda: netns.drop(port)), netns.undrop
    else:
        listener = SilentListener()
        request.addfinalizer(listener.close)
        host, port = "127.0.0.1", listener.port
        black_hole = heal = lambda: None
    config = CacheConfig(enabled=True, host=host, port=port)  # default timeouts

    # At start-up: the constructor connects (bounded by the connect timeout), calls go to memory.
    black_hole()
    started = time.monotonic()
    cache = CacheService(config)
    construct = time.monotonic() - started
    try:
        assert cache.is_redis_available() is False
        startup = _timed_calls(cache, 20)
    finally:
        cache.close()
    heal()

    # Mid-run: connected, then black-holed (the firewall case only: a silent port never answers).
    midrun: list[float] = []
    if hole == "firewall DROP":
        with CacheService(config) as cache:
            assert cache.is_redis_available() is True
            _timed_calls(cache, 3)  # every thread has its connection open
            black_hole()
            midrun = _timed_calls(cache, 20)
            assert cache.is_redis_available() is False
    figure(
        f"faults.black_hole[{hole}]",
        connect_timeout_s=connect_s,
        command_timeout_s=command_s,
        constructor_s=round(construct, 3),
        startup_max_call_ms=round(max(startup) * 1000, 1),
        midrun_max_call_ms=round(max(midrun, default=0) * 1000, 1),
        midrun_p99_ms=round(p99(midrun) * 1000, 2),
        midrun_median_ms=round(statistics.median(midrun) * 1000, 3) if midrun else 0,
    )
    assert construct <= connect_s + command_s + SLACK
    assert max(startup) <= SLACK  # the breaker is open: memory answers at once
    if midrun:
        # A call on an open connection waits one command timeout; a thread whose connection
        # must be made anew waits one connect timeout at most.
        assert max(midrun) <= max(connect_s, command_s) + SLACK
