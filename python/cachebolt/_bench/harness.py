"""`run_bench`: representative operations over pre-built keys, on every selected leg.

docs/ARCHITECTURE.md ("How the bench measures") explains the batches behind p50 and p99.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .._redact import mask_secrets
from .._sync import CacheService
from ..config import CacheConfig
from .loops import Batch, RunBatch, each, pairs, pairs_with
from .peers import PEER_CACHES, installed, limits_hit, peer_cache, redis_py_runs

__all__ = [
    "BATCH",
    "DEFAULT_DURATION",
    "MEMORY",
    "OPERATIONS",
    "REDIS",
    "BenchResult",
    "bench_value",
    "redis_config",
    "run_bench",
]

BATCH = 100
BATCH_TARGET_NS = 50_000
TTL_SECONDS = 300
LOCK_TTL_MS = 10_000
RATE_LIMIT = 1_000_000_000
RATE_WINDOW_SECONDS = 60
N_CONTAINERS = 1000
DEFAULT_DURATION = 60.0
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
MESSAGE = {"event": "updated", "id": 123, "keys": ["a", "b"]}


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


def bench_value(i: int) -> dict[str, Any]:
    """An 8-field JSON-able dict of about 200 bytes as orjson, distinct per `i`."""
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

    def of(self, operation: str) -> Sequence[Any]:
        """The batch items an operation works on."""
        table: dict[str, Sequence[Any]] = {
            "get (hit)": self.keys,
            "get (miss)": self.misses,
            "set": self.items,
            "get_or_set (hit)": self.keys,
            "delete": self.doomed,
            "incr": self.counters,
            "sadd": self.set_pairs,
            "sismember": self.set_pairs,
            "hset": self.hash_pairs,
            "hget": self.hash_pairs,
            "check_rate_limit": self.limited,
            "acquire_lock+release_lock": self.locks,
            "publish (1 subscriber)": ["bench"] * BATCH,
        }
        return table[operation]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class _Operation:
    name: str
    run: RunBatch
    data: Sequence[Any]
    # Untimed work before each batch (e.g. storing the keys a timed `delete` removes).
    before: RunBatch | None = None
    # Untimed wait for background work the operation caused (pub/sub delivery).
    settle: Callable[[], None] | None = None


class _Leg:
    """A named contender: its operations (a subset of OPERATIONS) and how to clean up.

    Args:
        name: the leg's name in the results.
        runs: the loop per operation name the leg has; with "delete" it has "set", which stores
            (untimed) the keys each timed delete batch removes.
        data: the data of the run.
        close: releases what the leg holds.
        settle: waits for the deliveries of "publish (1 subscriber)".
    """

    def __init__(
        self,
        name: str,
        runs: dict[str, RunBatch],
        data: _Data,
        close: Callable[[], object] = _nothing,
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.close = close
        self.operations = [
            _Operation(
                op,
                runs[op],
                data.of(op),
                before=_filler(runs["set"]) if op == "delete" else None,
                settle=settle if op == "publish (1 subscriber)" else None,
            )
            for op in OPERATIONS
            if op in runs
        ]


def _filler(put: RunBatch) -> RunBatch:
    """Stores MESSAGE under every key of a batch with the leg's own `set`."""

    def fill(batch: Batch) -> None:
        put([(k, MESSAGE) for k in batch])

    return fill


def _service_leg(name: str, cache: CacheService, data: _Data, close: Callable[[], object]) -> _Leg:
    """Every operation of a `CacheService` (memory or Redis)."""
    published = [0]
    received = [0]

    def on_message(_message: object) -> None:
        received[0] += 1

    cache.subscribe("bench", on_message)
    get_or_set, check_rate_limit = cache.get_or_set, cache.check_rate_limit
    acquire_lock, release_lock, publish = cache.acquire_lock, cache.release_lock, cache.publish

    def factory() -> dict[str, Any]:
        return MESSAGE

    def run_get_or_set(batch: Batch) -> None:
        for k in batch:
            get_or_set(k, TTL_SECONDS, factory)

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

    runs = {
        "get (hit)": each(cache.get),
        "get (miss)": each(cache.get),
        "set": pairs_with(cache.set, TTL_SECONDS),
        "get_or_set (hit)": run_get_or_set,
        "delete": each(cache.delete),
        "incr": each(cache.incr),
        "sadd": pairs(cache.sadd),
        "sismember": pairs(cache.sismember),
        "hset": pairs_with(cache.hset, HASH_TEXT),
        "hget": pairs(cache.hget),
        "check_rate_limit": run_rate_limit,
        "acquire_lock+release_lock": run_lock,
        "publish (1 subscriber)": run_publish,
    }
    return _Leg(name, runs, data, close, settle=wait_delivered)


def _memory_leg(data: _Data) -> _Leg:
    cache = CacheService(CacheConfig(enabled=False))
    for k, v in data.items:
        cache.set(k, v, TTL_SECONDS)
    return _service_leg(MEMORY, cache, data, cache.close)


def redis_config(url: str | None, environ: dict[str, str] | None = None) -> CacheConfig:
    """The Redis settings of the bench: `url`, else the `VALKEY_*` environment (enabled).

    Keys go under `<VALKEY_KEY_PREFIX>cachebolt-bench:<pid>:`, removed at the end.

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


def _redis_legs(config: CacheConfig, data: _Data, with_peers: bool) -> list[_Leg]:
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

    legs = [_service_leg(REDIS, cache, data, close)]
    if with_peers:
        raw = redis_py_runs(client, prefix, TTL_SECONDS, HASH_TEXT)
        runs = {name: raw[name.split(" ")[0]] for name in OPERATIONS if name.split(" ")[0] in raw}
        legs.append(_Leg("redis-py", runs, data))
        if config.url is not None and installed("limits"):
            legs.append(_limits_redis_leg(config.url, prefix, data))
    return legs


def _limits_redis_leg(url: str, prefix: str, data: _Data) -> _Leg:
    from limits.storage import RedisStorage

    storage = RedisStorage(url, key_prefix=prefix + "limits")
    run = limits_hit(storage, "moving window", RATE_LIMIT, RATE_WINDOW_SECONDS)

    def close() -> None:
        storage.reset()
        storage.storage.close()

    return _Leg("limits-redis (moving window)", {"check_rate_limit": run}, data, close)


def _peer_legs(data: _Data) -> list[_Leg]:
    """The installed in-process peers, each with the operations it has."""
    legs = []
    for name, module in PEER_CACHES.items():
        if installed(module):
            cache = peer_cache(name, 3 * len(data.keys) + 10, TTL_SECONDS)
            cache.set(data.items)
            runs = {
                "get (hit)": cache.get,
                "get (miss)": cache.get,
                "set": cache.set,
                "delete": cache.delete,
            }
            legs.append(_Leg(name, runs, data))
    if installed("limits"):
        from limits.storage import MemoryStorage

        storage = MemoryStorage()
        run = limits_hit(storage, "fixed window", RATE_LIMIT, RATE_WINDOW_SECONDS)
        legs.append(
            _Leg("limits (memory, fixed window)", {"check_rate_limit": run}, data, storage.reset)
        )
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
        each_seconds = seconds if seconds is not None else max(MIN_SECONDS, duration / len(plan))
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
                results.append(_measure(op, leg_name, each_seconds))
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
        "seconds_per_measurement": each_seconds,
        "batch_size": BATCH,
        "legs": [leg.name for leg in legs],
        "latency": "p50/p99 of batch time / batch size (batch: see each result)",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    return _with_ratios(results), meta
