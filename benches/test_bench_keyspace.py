"""Keyspace-wide work and pub/sub: del_pattern, the active expiry sweep, publish-to-callback.

- `del_pattern-1%` / `del_pattern-100%`: one `del_pattern` call over a keyspace of `n` keys
  (~200-byte values) matching 1% (`user:*00`) or all of them (`user:*`); the deleted keys are
  stored again (untimed) before each round. Figures are ns per key of the keyspace (one call
  per round, divided by `n`). Legs: `cachebolt`, `cachebolt async`, `core`, `floor` (dict +
  a compiled glob regex over the keys, then `del`), `fakeredis` (SCAN MATCH + UNLINK, as
  cachebolt's Redis backend does, on the first `BENCH_SLOW_OPS` keys).
- `active-expiry`: `n` keys whose TTL has passed, then one `sweep_expired()` (what the
  background sweep thread runs, without the GIL; leg `cachebolt`); ns per expired key.
  Floors: a dict of (value, deadline) scanned and pruned in Python; cachetools
  `TTLCache.expire()`.
- `publish-to-callback`: `publish()` then wait until the subscriber's callback has run in the
  dispatcher thread (a cross-thread round trip); ns per message, with p50/p99 of the one-way
  latency (publish call -> callback start) in the report.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import cachetools
import orjson
import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import SLOW_OPS, Measure, make_value, new_async_service

BLOB = orjson.dumps(make_value(42))
PATTERNS = {"1%": "user:*00", "100%": "user:*"}
DEL_LEGS = ["cachebolt", "cachebolt async", "core", "floor", "fakeredis"]


@pytest.fixture(scope="module")
def filled(keys: list[str], aio_loop: Any) -> Iterator[dict[str, Any]]:
    """One populated store per leg (the blocking and async services each wrap their own)."""
    import fakeredis

    core, sync_store, async_svc = MemoryStore(), MemoryStore(), new_async_service(aio_loop)
    sync = CacheService(store=sync_store)
    async_store = async_svc._memory_store
    fake = fakeredis.FakeRedis()
    made = {
        "core": core,
        "cachebolt": sync,
        "cachebolt async": async_svc,
        "floor": {},
        "fakeredis": fake,
        "_stores": {"core": core, "cachebolt": sync_store, "cachebolt async": async_store},
    }
    yield made
    sync.close()
    core.close()
    aio_loop.run_until_complete(async_svc.close())
    fake.close()


def _matching(keys: list[str], pattern: str) -> list[str]:
    rx = re.compile(fnmatch.translate(pattern))
    return [k for k in keys if rx.match(k)]


@pytest.mark.parametrize("share", list(PATTERNS))
@pytest.mark.parametrize("leg", DEL_LEGS)
def test_del_pattern(
    leg: str,
    share: str,
    filled: dict[str, Any],
    measure: Measure,
    keys: list[str],
    benchmark: Any,
    aio_loop: Any,
) -> None:
    benchmark.group = f"del_pattern-{share}"
    pattern = PATTERNS[share]
    space = keys[:SLOW_OPS] if leg == "fakeredis" else keys
    doomed = _matching(space, pattern)
    obj = filled[leg]
    if leg == "fakeredis":

        def refill_fake() -> None:
            pipe = obj.pipeline(transaction=False)
            for k in doomed:
                pipe.set(k, BLOB)
            pipe.execute()

        refill: Callable[[], None] = refill_fake
        if obj.dbsize() == 0:
            pipe = obj.pipeline(transaction=False)
            for k in space:
                pipe.set(k, BLOB)
            pipe.execute()

        def run() -> None:
            for batch in obj.scan_iter(match=pattern, count=1000):
                obj.unlink(batch)

    elif leg == "floor":
        data: dict[str, tuple[bytes, float | None]] = obj
        entry = (BLOB, None)
        if not data:
            data.update((k, entry) for k in space)
        rx = re.compile(fnmatch.translate(pattern))

        def refill_floor() -> None:
            data.update((k, entry) for k in doomed)

        refill = refill_floor

        def run() -> None:
            match = rx.match
            for k in [k for k in data if match(k)]:
                del data[k]

    else:
        store = filled["_stores"][leg]
        store_set = store.set
        if len(store) < len(space):
            for k in space:
                store_set(k, BLOB)

        def refill_store() -> None:
            for k in doomed:
                store_set(k, BLOB)

        refill = refill_store
        if leg == "cachebolt async":
            adel = obj.del_pattern

            def run() -> None:
                aio_loop.run_until_complete(adel(pattern))

        else:
            sdel = obj.del_pattern

            def run() -> None:
                sdel(pattern)

    note = f"keyspace: first {len(space):,} keys" if leg == "fakeredis" else ""
    measure(run, len(space), setup=refill, note=(note + "; " if note else "") + "ns per key")
    refill()


EXPIRY_LEGS = ["cachebolt", "floor", "cachetools"]


@pytest.mark.benchmark(group="active-expiry")
@pytest.mark.parametrize("leg", EXPIRY_LEGS)
def test_active_expiry(leg: str, measure: Measure, keys: list[str]) -> None:
    """One sweep over `n` expired keys; refilled (untimed) before each round."""
    clock = [0.0]
    if leg == "cachebolt":  # the memory backend's MemoryStore: what its sweep thread runs
        store = MemoryStore(cleanup_interval_seconds=None, manual_clock=True)
        store_set = store.set

        def refill() -> None:
            for k in keys:
                store_set(k, BLOB, 1.0)
            store.advance_clock(2000)

        def run() -> None:
            assert store.sweep_expired() == len(keys)

    elif leg == "floor":
        data: dict[str, tuple[bytes, float]] = {}

        def refill() -> None:
            deadline = clock[0] + 1.0
            data.update((k, (BLOB, deadline)) for k in keys)
            clock[0] += 2.0

        def run() -> None:
            now = clock[0]
            for k in [k for k, (_, d) in data.items() if d <= now]:
                del data[k]

    else:
        ttl_cache: cachetools.TTLCache[str, bytes] = cachetools.TTLCache(
            maxsize=2 * len(keys), ttl=1.0, timer=lambda: clock[0]
        )

        def refill() -> None:
            for k in keys:
                ttl_cache[k] = BLOB
            clock[0] += 2.0

        def run() -> None:
            ttl_cache.expire()
            assert not ttl_cache

    measure(run, len(keys), setup=refill, note="ns per expired key")
    if leg == "cachebolt":
        store.close()


@pytest.mark.benchmark(group="publish-to-callback")
@pytest.mark.parametrize("leg", ["cachebolt", "cachebolt async"])
def test_publish_to_callback(leg: str, measure: Measure, benchmark: Any, aio_loop: Any) -> None:
    """publish(), then wait for the callback (one message in flight at a time)."""
    n_msgs = 2000
    delivered = threading.Event()
    started: list[int] = [0]
    latencies: list[int] = []
    clock = time.perf_counter_ns

    def on_message(_message: object) -> None:
        latencies.append(clock() - started[0])
        delivered.set()

    message = {"event": "updated", "id": 1}
    if leg == "cachebolt":
        service: Any = CacheService()
        subscription = service.subscribe("bench", on_message)
        publish = service.publish

        def one() -> None:
            delivered.clear()
            started[0] = clock()
            publish("bench", message)
            if not delivered.wait(5):
                raise AssertionError("message not delivered in 5 s")

    else:
        service = new_async_service(aio_loop)
        subscription = aio_loop.run_until_complete(service.subscribe("bench", on_message))
        apublish = service.publish

        async def aone() -> None:
            delivered.clear()
            started[0] = clock()
            await apublish("bench", message)
            while not delivered.is_set():
                await asyncio.sleep(0)

        def one() -> None:
            aio_loop.run_until_complete(aone())

    def loop() -> None:
        for _ in range(n_msgs):
            one()

    try:
        measure(loop, n_msgs, rounds=3, note="publish + wait for the callback, one in flight")
    finally:
        if leg == "cachebolt":
            subscription.unsubscribe()
            service.close()
        else:
            subscription.unsubscribe()
            aio_loop.run_until_complete(service.close())
    ordered = sorted(latencies)
    p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
    benchmark.extra_info["report_md"] = (
        f"publish -> callback one-way latency, {leg} (memory backend, {len(ordered):,} messages): "
        f"p50 {p50 / 1000:.1f} µs, p99 {p99 / 1000:.1f} µs"
    )
