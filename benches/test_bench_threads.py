"""Two threads on the memory backend: throughput, and `get` latency under keyspace-wide work.

- `two-threads`: `CacheService.get` hits over the same 100k keys, one thread for a fixed time,
  then two threads at once; total ops/s of two against one (the GIL serialises the Python part
  of every call, so ~1x is the expected best; far below 1x would mean lock convoys).
- p99 of a `get` (each call timed with `perf_counter_ns`) in one thread while the other runs
  `del_pattern` over 1M keys, or `sweep_expired()` over 1M expired keys (the work of the
  background sweep); both run without the GIL and in small shard-lock batches, so the target is
  p99 < 1 ms. The baseline is the same loop with nothing else running.
`BENCH_THREAD_KEYS` (default 1,000,000) sizes the keyspace the background work goes over.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import build_keys, make_value, record_once

BIG = int(os.environ.get("BENCH_THREAD_KEYS", "1000000"))
HOT = 100_000
BLOB = orjson.dumps(make_value(7))
TARGET_P99_NS = 1_000_000


def _service(store: MemoryStore, hot: list[str]) -> CacheService:
    service = CacheService(store=store)
    for k in hot:
        service.set(k, {"k": k}, 3600)
    return service


def _throughput(get: Callable[[str], object], keys: list[str], threads: int, secs: float) -> float:
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        barrier.wait()
        done = 0
        while not stop.is_set():
            for k in keys[:10_000]:
                get(k)
            done += 10_000
        counts[i] = done

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(secs)
    stop.set()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def test_two_threads_throughput(benchmark: Any) -> None:
    hot = build_keys(HOT, prefix="hot:")
    store = MemoryStore()
    service = _service(store, hot)

    def run() -> dict[str, Any]:
        one = _throughput(service.get, hot, 1, 2.0)
        two = _throughput(service.get, hot, 2, 2.0)
        return {
            "report_md": (
                f"Two threads, `get` hits over {HOT:,} keys: one thread {one:,.0f} ops/s, two "
                f"threads {two:,.0f} ops/s in total ({two / one:.2f}x)"
            ),
            "goals": [
                {
                    "goal": "two threads: total get throughput vs one thread (no numeric goal)",
                    "measured": f"{two / one:.2f}x ({two:,.0f} vs {one:,.0f} ops/s)",
                    "met": None,
                }
            ],
        }

    try:
        record_once(benchmark, run)
    finally:
        service.close()


def _latencies_during(
    get: Callable[[str], object], hot: list[str], background: Callable[[], object] | None
) -> tuple[list[int], float]:
    """Per-call `get` latencies while `background` runs in another thread (or for 1 s)."""
    clock = time.perf_counter_ns
    out: list[int] = []
    done = threading.Event()
    elapsed = [0.0]

    def work() -> None:
        started = time.perf_counter()
        if background is not None:
            background()
        else:
            time.sleep(1.0)
        elapsed[0] = time.perf_counter() - started
        done.set()

    thread = threading.Thread(target=work)
    thread.start()
    i = 0
    n_hot = len(hot)
    while not done.is_set():
        k = hot[i % n_hot]
        i += 1
        t0 = clock()
        get(k)
        out.append(clock() - t0)
    thread.join()
    return out, elapsed[0]


def _p(ordered: list[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_get_latency_during_keyspace_work(benchmark: Any) -> None:
    hot = build_keys(HOT, prefix="hot:")
    big = build_keys(BIG, prefix="doom:")

    def run() -> dict[str, Any]:
        rows, goals = [], []
        store = MemoryStore(cleanup_interval_seconds=None)
        service = _service(store, hot)
        try:
            store_set = store.set
            cases: list[tuple[str, Callable[[], object] | None, Callable[[], object]]] = []

            def fill_plain() -> None:
                for k in big:
                    store_set(k, BLOB)

            def fill_expiring() -> None:
                for k in big:
                    store_set(k, BLOB, 0.2)
                time.sleep(0.3)

            cases.append(("nothing else running", None, lambda: None))
            cases.append(
                (f"del_pattern over {BIG:,} keys", lambda: store.del_pattern("doom:*"), fill_plain)
            )
            cases.append(
                (f"expiry sweep of {BIG:,} expired keys", store.sweep_expired, fill_expiring)
            )
            for name, background, prepare in cases:
                prepare()
                lat, took = _latencies_during(service.get, hot, background)
                lat.sort()
                p50, p99, worst = _p(lat, 0.5), _p(lat, 0.99), lat[-1]
                rows.append(
                    f"| {name} | {took * 1000:,.0f} ms | {len(lat):,} | {p50 / 1000:.2f} µs | "
                    f"{p99 / 1000:.2f} µs | {worst / 1000:,.0f} µs |"
                )
                if background is not None:
                    assert len(store) == HOT, "the background work left keys behind"
                    goals.append(
                        {
                            "goal": f"two threads: get p99 < 1 ms during {name}",
                            "measured": f"p99 {p99 / 1000:.1f} µs (max {worst / 1000:,.0f} µs)",
                            "met": p99 < TARGET_P99_NS,
                        }
                    )
        finally:
            service.close()
        table = "\n".join(
            [
                f"#### `get` latency in one thread while another works ({HOT:,} hot keys)",
                "",
                "| other thread | its duration | gets timed | p50 | p99 | max |",
                "|---|---:|---:|---:|---:|---:|",
                *rows,
            ]
        )
        return {"report_md": table, "goals": goals}

    record_once(benchmark, run)
