"""The `cachebolt` command line: `cachebolt bench` measures the backends, and the peers if asked.

`cachebolt bench` runs a representative set of operations over pre-built keys on the embedded
memory backend (default), on Redis (`--backend redis|all`, from `--url` or the `VALKEY_*`
environment) and, with `--peers`, on the peer libraries that are installed (cachetools, moka-py,
theine, `limits`; raw redis-py and `limits` on Redis with a Redis backend). Each (operation,
leg) runs for an equal share of a time budget (`--duration`, about a minute by default) and
prints throughput, latency percentiles and the ratio to cachebolt memory.

Latency is measured per batch: one `perf_counter_ns` pair around a batch of operations (up to
100; fewer for slow legs so one batch lasts ~50 µs, down to single operations on Redis), so the
timer does not dominate a sub-microsecond call. p50 and p99 are percentiles of the batch times
divided by the batch size: for a fast leg they are per-operation means of a batch, not single-
call latencies. The full suite with every peer is `make bench` (benches/).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._redact import mask_secrets
from ._sync import CacheService
from .config import CacheConfig
from .exceptions import ConfigError

__all__ = ["BenchResult", "main", "run_bench"]

BATCH = 100
BATCH_TARGET_NS = 50_000
TTL_SECONDS = 300
LOCK_TTL_MS = 10_000
RATE_LIMIT = 1_000_000_000
RATE_WINDOW_SECONDS = 60
N_CONTAINERS = 1000
DEFAULT_DURATION = 60.0
QUICK_DURATION = 5.0
MIN_SECONDS = 0.02
HASH_TEXT = "x" * 200
MEMORY = "cachebolt memory"
REDIS = "cachebolt redis"
OPERATIONS = (
    "get (hit)",
    "get (miss)",
    "set",
    "get_or_set (hit)",
    "delete",
    "incr",
    "sadd",
    "sismember",
    "hset",
    "hget",
    "check_rate_limit",
    "acquire_lock+release_lock",
    "publish (1 subscriber)",
)

Batch = list[Any]
RunBatch = Callable[[Batch], None]


@dataclass(frozen=True)
class BenchResult:
    """The measurement of one operation on one leg.

    Attributes:
        operation: the operation's name, e.g. "get (hit)".
        leg: what ran it, e.g. "cachebolt memory", "cachebolt redis", "cachetools".
        ops: operations timed.
        seconds: time spent inside timed batches.
        ops_per_sec: `ops / seconds`.
        p50_ns: median of the batch times divided by the batch size, in nanoseconds.
        p99_ns: 99th percentile of the same, in nanoseconds.
        mean_ns: `seconds / ops`, in nanoseconds.
        batch: operations per timed batch.
        ratio: `mean_ns` over cachebolt memory's for the same operation (None without it);
            above 1 means cachebolt memory is faster by that factor.
    """

    operation: str
    leg: str
    ops: int
    seconds: float
    ops_per_sec: float
    p50_ns: float
    p99_ns: float
    mean_ns: float
    batch: int
    ratio: float | None = None


@dataclass(frozen=True)
class _Operation:
    name: str
    run: RunBatch
    data: Sequence[Any]
    # Untimed work before each batch (e.g. storing the keys a timed `delete` removes).
    before: RunBatch | None = None
    # Untimed wait for background work the operation caused (pub/sub delivery).
    settle: Callable[[], None] | None = None


def bench_value(i: int) -> dict[str, Any]:
    """An 8-field JSON-able dict of about 200 bytes as orjson, distinct per `i` (benches/ too)."""
    return {
        "id": i,
        "name": f"user-{i:06d}",
        "email": f"user{i:06d}@example.com",
        "active": i % 3 != 0,
        "score": round(i * 1.618, 3),
        "tags": ["reader", "writer", f"g{i % 97}"],
        "created_at": "2026-11-28T01:02:03Z",
        "bio": "bench payload, 8 fields",
    }


@dataclass
class _Data:
    """The keys and values every leg works on (built once, untimed)."""

    keys: list[str]
    items: list[tuple[str, dict[str, Any]]]
    misses: list[str]
    doomed: list[str]
    counters: list[str]
    limited: list[str]
    locks: list[str]
    set_pairs: list[tuple[str, str]]
    hash_pairs: list[tuple[str, str]]

    @classmethod
    def build(cls, n_keys: int) -> _Data:
        ids = list(range(n_keys))
        random.Random(20261128).shuffle(ids)
        keys = [f"user:{i:06d}" for i in ids]
        return cls(
            keys=keys,
            items=[(k, bench_value(i)) for k, i in zip(keys, ids, strict=True)],
            misses=[f"miss:{i:06d}" for i in ids],
            doomed=[f"del:{i:06d}" for i in ids],
            counters=[f"counter:{i:06d}" for i in ids],
            limited=[f"rl:{i:06d}" for i in ids],
            locks=[f"order:{i:06d}" for i in ids],
            set_pairs=[(f"set:{n % N_CONTAINERS}", k) for n, k in enumerate(keys)],
            hash_pairs=[(f"hash:{n % N_CONTAINERS}", k) for n, k in enumerate(keys)],
        )


MESSAGE = {"event": "updated", "id": 123, "keys": ["a", "b"]}


def _service_operations(cache: CacheService, data: _Data) -> list[_Operation]:
    """One timed loop per operation of a `CacheService` (memory or Redis), in reporting order."""
    published = [0]
    received = [0]

    def on_message(_message: object) -> None:
        received[0] += 1

    cache.subscribe("bench", on_message)

    get, set_, delete = cache.get, cache.set, cache.delete
    get_or_set, incr = cache.get_or_set, cache.incr
    sadd, sismember, hset, hget = cache.sadd, cache.sismember, cache.hset, cache.hget
    check_rate_limit = cache.check_rate_limit
    acquire_lock, release_lock = cache.acquire_lock, cache.release_lock
    publish = cache.publish

    def factory() -> dict[str, Any]:
        return MESSAGE

    def run_get(batch: Batch) -> None:
        for k in batch:
            get(k)

    def run_set(batch: Batch) -> None:
        for k, v in batch:
            set_(k, v, TTL_SECONDS)

    def run_get_or_set(batch: Batch) -> None:
        for k in batch:
            get_or_set(k, TTL_SECONDS, factory)

    def fill_doomed(batch: Batch) -> None:
        for k in batch:
            set_(k, MESSAGE, TTL_SECONDS)

    def run_delete(batch: Batch) -> None:
        for k in batch:
            delete(k)

    def run_incr(batch: Batch) -> None:
        for k in batch:
            incr(k)

    def run_sadd(batch: Batch) -> None:
        for s, m in batch:
            sadd(s, m)

    def run_sismember(batch: Batch) -> None:
        for s, m in batch:
            sismember(s, m)

    def run_hset(batch: Batch) -> None:
        for h, f in batch:
            hset(h, f, HASH_TEXT)

    def run_hget(batch: Batch) -> None:
        for h, f in batch:
            hget(h, f)

    def run_rate_limit(batch: Batch) -> None:
        for k in batch:
            check_rate_limit(k, RATE_LIMIT, RATE_WINDOW_SECONDS)

    def run_lock(batch: Batch) -> None:
        for k in batch:
            token = acquire_lock(k, LOCK_TTL_MS)
            if token is not None:
                release_lock(k, token)

    def run_publish(batch: Batch) -> None:
        for channel in batch:
            publish(channel, MESSAGE)
        published[0] += len(batch)

    def wait_delivered() -> None:
        # The dispatcher thread delivers; let it catch up so its queue stays short.
        deadline = time.monotonic() + 5.0
        while received[0] < published[0] and time.monotonic() < deadline:
            time.sleep(0.0005)

    return [
        _Operation("get (hit)", run_get, data.keys),
        _Operation("get (miss)", run_get, data.misses),
        _Operation("set", run_set, data.items),
        _Operation("get_or_set (hit)", run_get_or_set, data.keys),
        _Operation("delete", run_delete, data.doomed, before=fill_doomed),
        _Operation("incr", run_incr, data.counters),
        _Operation("sadd", run_sadd, data.set_pairs),
        _Operation("sismember", run_sismember, data.set_pairs),
        _Operation("hset", run_hset, data.hash_pairs),
        _Operation("hget", run_hget, data.hash_pairs),
        _Operation("check_rate_limit", run_rate_limit, data.limited),
        _Operation("acquire_lock+release_lock", run_lock, data.locks),
        _Operation("publish (1 subscriber)", run_publish, ["bench"] * BATCH, settle=wait_delivered),
    ]


# --- legs --------------------------------------------------------------------------------------


class _Leg:
    """A named contender: its operations (a subset of OPERATIONS) and how to clean up."""

    def __init__(self, name: str, operations: list[_Operation], close: Callable[[], object]):
        self.name = name
        self.operations = operations
        self.close = close


def _memory_leg(data: _Data) -> _Leg:
    cache = CacheService(CacheConfig(enabled=False))
    for k, v in data.items:
        cache.set(k, v, TTL_SECONDS)
    return _Leg(MEMORY, _service_operations(cache, data), cache.close)


def redis_config(url: str | None, environ: dict[str, str] | None = None) -> CacheConfig:
    """The Redis settings of the bench: `url`, else the `VALKEY_*` environment (enabled).

    The keys go under a private prefix (`<VALKEY_KEY_PREFIX>cachebolt-bench:<pid>:`), removed at
    the end: the bench never touches other keys.

    Raises:
        ConfigError: a `VALKEY_*` variable has a bad value.
    """
    if url is not None:
        config = CacheConfig(enabled=True, url=url)
    else:
        env = dict(os.environ if environ is None else environ)
        env["VALKEY_ENABLED"] = "true"
        config = CacheConfig.from_env(env)
    prefix = f"{config.key_prefix}cachebolt-bench:{os.getpid()}:"
    return dataclasses.replace(config, key_prefix=prefix)


def _redis_legs(config: CacheConfig, data: _Data, peers: bool) -> list[_Leg]:
    import orjson

    cache = CacheService(config)
    if not cache.is_redis_available():
        cache.close()
        where = config.url or f"{config.host}:{config.port}"
        message = f"cannot reach Redis at {where} (see the log above)"
        raise ConnectionError(mask_secrets(message, config.password))
    client = cache.get_client()
    prefix = config.key_prefix
    dumps = orjson.dumps
    for start in range(0, len(data.items), 1000):  # pipelined fill, the bytes `set` stores
        pipe = client.pipeline(transaction=False)
        for k, v in data.items[start : start + 1000]:
            pipe.set(prefix + k, dumps(v), ex=TTL_SECONDS)
        pipe.execute()

    def close() -> None:
        try:
            cache.reset()  # this run's prefix only (SCAN + UNLINK)
        finally:
            cache.close()

    legs = [_Leg(REDIS, _service_operations(cache, data), close)]
    if peers:
        legs.append(_Leg("redis-py", _raw_redis_operations(client, prefix, data), _nothing))
        if config.url is not None and _installed("limits"):
            legs.append(_limits_redis_leg(config.url, prefix, data))
    return legs


def _raw_redis_operations(client: Any, prefix: str, data: _Data) -> list[_Operation]:
    """redis-py doing the same commands with the same orjson codec (no cachebolt layer)."""
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
    get, set_, delete, incr = client.get, client.set, client.delete, client.incr
    sadd, sismember, hset, hget = client.sadd, client.sismember, client.hset, client.hget
    blob = dumps(MESSAGE)

    def run_get(batch: Batch) -> None:
        for k in batch:
            b = get(prefix + k)
            if b is not None:
                loads(b)

    def run_set(batch: Batch) -> None:
        for k, v in batch:
            set_(prefix + k, dumps(v), ex=TTL_SECONDS)

    def fill_doomed(batch: Batch) -> None:
        for k in batch:
            set_(prefix + k, blob, ex=TTL_SECONDS)

    def run_delete(batch: Batch) -> None:
        for k in batch:
            delete(prefix + k)

    def run_incr(batch: Batch) -> None:
        for k in batch:
            incr(prefix + k)

    def pairs(fn: Callable[..., Any], *extra: Any) -> RunBatch:
        def run(batch: Batch) -> None:
            for a, b in batch:
                fn(prefix + a, b, *extra)

        return run

    return [
        _Operation("get (hit)", run_get, data.keys),
        _Operation("get (miss)", run_get, data.misses),
        _Operation("set", run_set, data.items),
        _Operation("delete", run_delete, data.doomed, before=fill_doomed),
        _Operation("incr", run_incr, data.counters),
        _Operation("sadd", pairs(sadd), data.set_pairs),
        _Operation("sismember", pairs(sismember), data.set_pairs),
        _Operation("hset", pairs(hset, HASH_TEXT), data.hash_pairs),
        _Operation("hget", pairs(hget), data.hash_pairs),
    ]


def _limits_redis_leg(url: str, prefix: str, data: _Data) -> _Leg:
    from limits import RateLimitItemPerMinute
    from limits.storage import RedisStorage
    from limits.strategies import MovingWindowRateLimiter

    storage = RedisStorage(url, key_prefix=prefix + "limits")
    hit = MovingWindowRateLimiter(storage).hit
    item = RateLimitItemPerMinute(RATE_LIMIT)

    def run(batch: Batch) -> None:
        for k in batch:
            hit(item, k)

    def close() -> None:
        storage.reset()
        storage.storage.close()

    op = _Operation("check_rate_limit", run, data.limited)
    return _Leg("limits-redis (moving window)", [op], close)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _dict_cache_operations(
    get: Callable[[str], Any],
    put: Callable[[str, Any], Any],
    remove: Callable[[str], Any],
    data: _Data,
) -> list[_Operation]:
    """get/set/delete of an in-process cache that stores the dict object (no codec)."""
    for k, v in data.items:
        put(k, v)

    def run_get(batch: Batch) -> None:
        for k in batch:
            get(k)

    def run_set(batch: Batch) -> None:
        for k, v in batch:
            put(k, v)

    def fill_doomed(batch: Batch) -> None:
        for k in batch:
            put(k, MESSAGE)

    def run_delete(batch: Batch) -> None:
        for k in batch:
            remove(k)

    return [
        _Operation("get (hit)", run_get, data.keys),
        _Operation("get (miss)", run_get, data.misses),
        _Operation("set", run_set, data.items),
        _Operation("delete", run_delete, data.doomed, before=fill_doomed),
    ]


def _peer_legs(data: _Data) -> list[_Leg]:
    """The installed in-process peers, each with the operations it has."""
    legs = []
    cap = 3 * len(data.keys) + 10
    if _installed("cachetools"):
        import cachetools

        ttl_cache: Any = cachetools.TTLCache(maxsize=cap, ttl=TTL_SECONDS)
        ops = _dict_cache_operations(
            ttl_cache.get, ttl_cache.__setitem__, lambda k: ttl_cache.pop(k, None), data
        )
        legs.append(_Leg("cachetools TTLCache", ops, _nothing))
    if _installed("moka_py"):
        import moka_py

        moka: Any = moka_py.Moka(cap)
        moka_set = moka.set
        ops = _dict_cache_operations(
            moka.get, lambda k, v: moka_set(k, v, TTL_SECONDS), moka.remove, data
        )
        legs.append(_Leg("moka-py", ops, _nothing))
    if _installed("theine"):
        import theine

        lfu: Any = theine.Cache(cap)
        ttl, lfu_set = timedelta(seconds=TTL_SECONDS), lfu.set
        ops = _dict_cache_operations(lfu.get, lambda k, v: lfu_set(k, v, ttl), lfu.delete, data)
        legs.append(_Leg("theine", ops, _nothing))
    if _installed("limits"):
        from limits import RateLimitItemPerMinute
        from limits.storage import MemoryStorage
        from limits.strategies import FixedWindowRateLimiter

        storage = MemoryStorage()
        hit = FixedWindowRateLimiter(storage).hit
        item = RateLimitItemPerMinute(RATE_LIMIT)

        def run_hit(batch: Batch) -> None:
            for k in batch:
                hit(item, k)

        op = _Operation("check_rate_limit", run_hit, data.limited)
        legs.append(_Leg("limits (memory, fixed window)", [op], storage.reset))
    return legs


# --- measuring ----------------------------------------------------------------------------------


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def _batch_size(op: _Operation) -> int:
    """Operations per batch so one batch lasts about BATCH_TARGET_NS (1..BATCH); warms up too."""
    probe = list(op.data[:10])
    if op.before is not None:
        op.before(probe)
    start = time.perf_counter_ns()
    op.run(probe)
    per_op = (time.perf_counter_ns() - start) / max(1, len(probe))
    (op.settle or _nothing)()
    return max(1, min(BATCH, int(BATCH_TARGET_NS / max(per_op, 1.0))))


def _measure(op: _Operation, leg: str, seconds: float) -> BenchResult:
    """Run `op` batch after batch (cycling over its data) until `seconds` of timed work."""
    settle = op.settle or _nothing
    size = _batch_size(op)
    batches = [list(op.data[i : i + size]) for i in range(0, len(op.data), size)]
    # One untimed pass over a few batches warms the caches and the code paths.
    for batch in batches[:3]:
        if op.before is not None:
            op.before(batch)
        op.run(batch)
    settle()
    budget_ns = int(seconds * 1e9)
    clock = time.perf_counter_ns
    per_op: list[float] = []
    spent_ns = 0
    ops = 0
    i = 0
    while spent_ns < budget_ns or not per_op:
        batch = batches[i % len(batches)]
        i += 1
        if op.before is not None:
            op.before(batch)
        start = clock()
        op.run(batch)
        elapsed = clock() - start
        spent_ns += elapsed
        ops += len(batch)
        per_op.append(elapsed / len(batch))
        if i % 64 == 0:
            settle()
    settle()
    per_op.sort()
    spent_ns = max(spent_ns, 1)
    return BenchResult(
        operation=op.name,
        leg=leg,
        ops=ops,
        seconds=spent_ns / 1e9,
        ops_per_sec=ops / (spent_ns / 1e9),
        p50_ns=_percentile(per_op, 0.50),
        p99_ns=_percentile(per_op, 0.99),
        mean_ns=spent_ns / ops,
        batch=size,
    )


def _with_ratios(results: list[BenchResult]) -> list[BenchResult]:
    memory = {r.operation: r.mean_ns for r in results if r.leg == MEMORY}
    out = []
    for r in results:
        ref = memory.get(r.operation)
        out.append(dataclasses.replace(r, ratio=r.mean_ns / ref if ref else None))
    return out


def run_bench(
    n_keys: int,
    seconds: float | None = None,
    progress: TextIO | None = None,
    *,
    backend: str = "memory",
    redis: CacheConfig | None = None,
    peers: bool = False,
    duration: float = DEFAULT_DURATION,
    operations: Sequence[str] = OPERATIONS,
) -> tuple[list[BenchResult], dict[str, Any]]:
    """Measure every operation on every selected leg.

    Args:
        n_keys: distinct keys per operation (the data is built before any timing).
        seconds: timed seconds per (operation, leg); None: an equal share of `duration`.
        progress: where to write the "[i/n] operation - leg" progress line (None: nowhere).
        backend: "memory", "redis" or "all".
        redis: the Redis settings (required for "redis" and "all"; see `redis_config`).
        peers: add the installed peer libraries' legs.
        duration: total timed seconds, shared by every (operation, leg) when `seconds` is None.
        operations: the operations to measure (names from `OPERATIONS`; default all).

    Returns:
        The results in reporting order (operation, then leg), and metadata describing the run.

    Raises:
        ConnectionError: Redis was asked for and does not answer.
        ValueError: an unknown backend or operation, or a Redis backend without its settings.
    """
    if backend not in ("memory", "redis", "all"):
        raise ValueError(f"backend must be memory, redis or all, not {backend!r}")
    if backend != "memory" and redis is None:
        raise ValueError("a Redis backend needs its settings (redis=...)")
    unknown = set(operations) - set(OPERATIONS)
    if unknown:
        raise ValueError(f"unknown operations: {', '.join(sorted(unknown))}")
    data = _Data.build(n_keys)
    legs: list[_Leg] = []
    try:
        if backend in ("memory", "all"):
            legs.append(_memory_leg(data))
        if backend in ("redis", "all") and redis is not None:
            legs += _redis_legs(redis, data, peers)
        if peers:
            legs += _peer_legs(data)
        plan = [
            (op, leg.name)
            for name in OPERATIONS
            if name in operations
            for leg in legs
            for op in leg.operations
            if op.name == name
        ]
        each = seconds if seconds is not None else max(MIN_SECONDS, duration / len(plan))
        # The data built above is long-lived: freeze it so collections do not rescan it.
        gc.collect()
        gc.freeze()
        results = []
        try:
            for index, (op, leg_name) in enumerate(plan, start=1):
                if progress is not None:
                    line = f"[{index}/{len(plan)}] {op.name} - {leg_name} ..."
                    progress.write(f"\r{line:<72}")
                    progress.flush()
                results.append(_measure(op, leg_name, each))
        finally:
            gc.unfreeze()
            if progress is not None:
                progress.write("\r" + " " * 72 + "\r")
                progress.flush()
    finally:
        for leg in legs:
            leg.close()
    meta = {
        "backend": backend,
        "keys": n_keys,
        "seconds_per_measurement": each,
        "batch_size": BATCH,
        "legs": [leg.name for leg in legs],
        "latency": "p50/p99 of batch time / batch size (batch: see each result)",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    return _with_ratios(results), meta


def _nothing() -> None:
    return None


def _fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


HEADER = ("operation", "leg", "ops/s", "p50", "p99", "ratio to cachebolt memory")


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table: operation | leg | ops/s | p50 | p99 | ratio to cachebolt memory."""
    rows = [
        (
            r.operation,
            r.leg,
            f"{r.ops_per_sec:,.0f}",
            _fmt_ns(r.p50_ns),
            _fmt_ns(r.p99_ns),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        left = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        rest = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return "| " + " | ".join([*left, *rest]) + " |"

    rule = (
        "|"
        + "|".join(["-" * (w + 2) for w in widths[:2]] + ["-" * (w + 1) + ":" for w in widths[2:]])
        + "|"
    )
    return "\n".join([line(HEADER), rule, *(line(row) for row in rows)])


def write_plot(results: Sequence[BenchResult], path: Path, title: str) -> None:
    """A PNG of ops/s per operation (rows) and leg (bars), log scale.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (`pip install 'cachebolt[plot]'`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    operations = [op for op in OPERATIONS if any(r.operation == op for r in results)]
    legs = list(dict.fromkeys(r.leg for r in results))
    colors = {leg: f"C{i % 10}" for i, leg in enumerate(legs)}
    by = {(r.operation, r.leg): r.ops_per_sec for r in results}
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.2 * len(results) + 0.15 * len(operations)))
    y, ticks, labelled = 0.0, [], set()
    for op in operations:
        present = [leg for leg in legs if (op, leg) in by]
        ticks.append(y + (len(present) - 1) / 2)
        for leg in present:
            label = None if leg in labelled else leg
            labelled.add(leg)
            ax.barh(y, by[(op, leg)], height=0.85, color=colors[leg], label=label)
            y += 1
        y += 0.8
    ax.set_yticks(ticks, operations)
    ax.invert_yaxis()
    ax.set_xlim(left=min(by.values()) / 2)
    ax.set_xscale("log")
    ax.set_xlabel("operations per second (log scale, higher is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or math.isinf(value):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {raw!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (which quote the arguments) hide URL passwords."""

    def error(self, message: str) -> NoReturn:
        super().error(mask_secrets(message))


def _fail(message: str, secret: str | None = None) -> None:
    print(f"cachebolt bench: {mask_secrets(message, secret)}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cachebolt", description="cachebolt command line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="measure the backends (and the installed peers)",
        description=(
            "Run representative operations on cachebolt's memory backend (and Redis, and the "
            "installed peer libraries) and print ops/s, p50/p99 latency and the ratio of each "
            "leg's time per operation to cachebolt memory's (above 1: cachebolt memory is "
            "faster). Latency is timed per batch of up to 100 operations: p50/p99 are batch "
            "time / batch size."
        ),
    )
    bench.add_argument(
        "--backend",
        choices=("memory", "redis", "all"),
        default="memory",
        help="memory (default), redis (from --url or VALKEY_*), or all",
    )
    bench.add_argument("--url", help="redis:// or rediss:// URL (default: the VALKEY_* variables)")
    bench.add_argument(
        "--peers", action="store_true", help="add the installed peers (cachetools, moka-py, ...)"
    )
    bench.add_argument(
        "--keys", type=_positive_int, help="distinct keys (default 100000; 10000 with --quick)"
    )
    timing = bench.add_mutually_exclusive_group()
    timing.add_argument(
        "--duration",
        type=_positive_float,
        default=DEFAULT_DURATION,
        help=f"total timed seconds, shared by every measurement (default {DEFAULT_DURATION:g})",
    )
    timing.add_argument(
        "--seconds", type=_positive_float, help="timed seconds per (operation, leg) instead"
    )
    timing.add_argument(
        "--quick", action="store_true", help=f"{QUICK_DURATION:g} s in total, a smoke test"
    )
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    bench.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw ops/s per operation and leg (matplotlib)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments without the program name (None: `sys.argv[1:]`).

    Returns:
        The process exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "bench":
        parser.print_help(sys.stderr)
        return 2
    if args.plot is not None and not _installed("matplotlib"):
        _fail("--plot needs matplotlib: pip install 'cachebolt[plot]'")
        return 2
    if args.url is not None and args.backend == "memory":
        parser.error("--url needs --backend redis or all")
    redis = None
    if args.backend != "memory":
        try:
            redis = redis_config(args.url)
        except ConfigError as exc:
            _fail(str(exc))
            return 2
    n_keys = args.keys or (10_000 if args.quick else 100_000)
    duration = QUICK_DURATION if args.quick else args.duration
    try:
        results, meta = run_bench(
            n_keys,
            args.seconds,
            progress=sys.stderr,
            backend=args.backend,
            redis=redis,
            peers=args.peers,
            duration=duration,
        )
    except ConnectionError as exc:
        _fail(str(exc), redis.password if redis is not None else None)
        return 1
    title = (
        f"cachebolt bench: {args.backend} backend{' + peers' if args.peers else ''}, "
        f"{n_keys:,} keys, {meta['seconds_per_measurement']:.2g} s per measurement, "
        f"Python {meta['python']}"
    )
    print(title)
    print(format_table(results))
    print("p50/p99: batch time / batch size; ratio: time per op / cachebolt memory's.")
    if args.json is not None:
        payload = {**meta, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        write_plot(results, args.plot, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
