"""The `cachebolt` command line: `cachebolt bench` measures the embedded memory backend.

`cachebolt bench` runs a representative set of `CacheService` operations over pre-built keys,
each for a fixed time, and prints throughput and latency percentiles. Latency is timed per batch
of 100 operations (one `perf_counter_ns` pair per batch, so the timer does not dominate a
sub-microsecond call); p50 and p99 are over the batch means. Comparisons with the peer libraries
live in `benches/` (`make bench`).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from ._sync import CacheService
from .config import CacheConfig

__all__ = ["BenchResult", "main", "run_bench"]

BATCH = 100
TTL_SECONDS = 300
LOCK_TTL_MS = 10_000
RATE_LIMIT = 1_000_000_000
RATE_WINDOW_SECONDS = 60
N_CONTAINERS = 1000
DEFAULT_SECONDS = 1.0
QUICK_SECONDS = 0.05
HASH_TEXT = "x" * 200

Batch = list[Any]
RunBatch = Callable[[Batch], None]


@dataclass(frozen=True)
class BenchResult:
    """The measurement of one operation.

    Attributes:
        operation: the operation's name, e.g. "get (hit)".
        ops: operations timed.
        seconds: time spent inside timed batches.
        ops_per_sec: `ops / seconds`.
        p50_ns: median of the per-operation means of the batches, in nanoseconds.
        p99_ns: 99th percentile of the same, in nanoseconds.
        mean_ns: `seconds / ops`, in nanoseconds.
    """

    operation: str
    ops: int
    seconds: float
    ops_per_sec: float
    p50_ns: float
    p99_ns: float
    mean_ns: float


@dataclass(frozen=True)
class _Operation:
    name: str
    run: RunBatch
    batches: list[Batch]
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


def _batches(items: Sequence[Any]) -> list[Batch]:
    return [list(items[i : i + BATCH]) for i in range(0, len(items), BATCH)]


def _operations(cache: Any, n_keys: int) -> list[_Operation]:
    """Build the data (untimed) and one timed loop per operation, in reporting order.

    Args:
        cache: an in-memory `CacheService`.
        n_keys: distinct keys per operation.
    """
    ids = list(range(n_keys))
    random.Random(20261128).shuffle(ids)
    keys = [f"user:{i:06d}" for i in ids]
    items = [(k, bench_value(i)) for k, i in zip(keys, ids, strict=True)]
    for k, v in items:
        cache.set(k, v, TTL_SECONDS)
    misses = [f"miss:{i:06d}" for i in ids]
    doomed = [f"del:{i:06d}" for i in ids]
    counters = [f"counter:{i:06d}" for i in ids]
    limited = [f"rl:{i:06d}" for i in ids]
    locks = [f"order:{i:06d}" for i in ids]
    set_pairs = [(f"set:{n % N_CONTAINERS}", k) for n, k in enumerate(keys)]
    hash_pairs = [(f"hash:{n % N_CONTAINERS}", k) for n, k in enumerate(keys)]
    message = {"event": "updated", "id": 123, "keys": ["a", "b"]}
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
        return message

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
            set_(k, message, TTL_SECONDS)

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
            publish(channel, message)
        published[0] += len(batch)

    def wait_delivered() -> None:
        # The dispatcher thread delivers; let it catch up so its queue stays short.
        deadline = time.monotonic() + 5.0
        while received[0] < published[0] and time.monotonic() < deadline:
            time.sleep(0.0005)

    return [
        _Operation("get (hit)", run_get, _batches(keys)),
        _Operation("get (miss)", run_get, _batches(misses)),
        _Operation("set", run_set, _batches(items)),
        _Operation("get_or_set (hit)", run_get_or_set, _batches(keys)),
        _Operation("delete", run_delete, _batches(doomed), before=fill_doomed),
        _Operation("incr", run_incr, _batches(counters)),
        _Operation("sadd", run_sadd, _batches(set_pairs)),
        _Operation("sismember", run_sismember, _batches(set_pairs)),
        _Operation("hset", run_hset, _batches(hash_pairs)),
        _Operation("hget", run_hget, _batches(hash_pairs)),
        _Operation("check_rate_limit", run_rate_limit, _batches(limited)),
        _Operation("acquire_lock+release_lock", run_lock, _batches(locks)),
        _Operation(
            "publish (1 subscriber)", run_publish, [["bench"] * BATCH], settle=wait_delivered
        ),
    ]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def _measure(op: _Operation, seconds: float) -> BenchResult:
    """Run `op` batch after batch (cycling over its data) until `seconds` of timed work."""
    settle = op.settle or _nothing
    budget_ns = int(seconds * 1e9)
    clock = time.perf_counter_ns
    per_op: list[float] = []
    spent_ns = 0
    ops = 0
    # One untimed pass over a few batches warms the caches and the code paths.
    for batch in op.batches[:3]:
        if op.before is not None:
            op.before(batch)
        op.run(batch)
    settle()
    i = 0
    while spent_ns < budget_ns or not per_op:
        batch = op.batches[i % len(op.batches)]
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
    per_op.sort()
    return BenchResult(
        operation=op.name,
        ops=ops,
        seconds=spent_ns / 1e9,
        ops_per_sec=ops / (spent_ns / 1e9) if spent_ns else 0.0,
        p50_ns=_percentile(per_op, 0.50),
        p99_ns=_percentile(per_op, 0.99),
        mean_ns=spent_ns / ops,
    )


def run_bench(
    n_keys: int, seconds: float, progress: TextIO | None = None
) -> tuple[list[BenchResult], dict[str, Any]]:
    """Measure every operation on a fresh in-memory `CacheService`.

    Args:
        n_keys: distinct keys per operation (the data is built before any timing).
        seconds: timed seconds per operation.
        progress: where to write the "[i/n] name ..." progress line (None: nowhere).

    Returns:
        The results in reporting order, and metadata describing the run.
    """
    with CacheService(CacheConfig(enabled=False)) as cache:
        operations = _operations(cache, n_keys)
        # The data built above is long-lived: freeze it so collections do not rescan it.
        gc.collect()
        gc.freeze()
        results = []
        try:
            for index, op in enumerate(operations, start=1):
                if progress is not None:
                    line = f"[{index}/{len(operations)}] {op.name} ..."
                    progress.write(f"\r{line:<48}")
                    progress.flush()
                results.append(_measure(op, seconds))
        finally:
            gc.unfreeze()
            if progress is not None:
                progress.write("\r" + " " * 48 + "\r")
                progress.flush()
    meta = {
        "backend": "memory",
        "keys": n_keys,
        "seconds_per_operation": seconds,
        "batch_size": BATCH,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    return results, meta


def _nothing() -> None:
    return None


def _fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table: operation | ops/s | p50 | p99."""
    rows = [
        (r.operation, f"{r.ops_per_sec:,.0f}", _fmt_ns(r.p50_ns), _fmt_ns(r.p99_ns))
        for r in results
    ]
    header = ("operation", "ops/s", "p50", "p99")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join([first, *rest]) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {raw!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cachebolt", description="cachebolt command line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="measure the embedded memory backend",
        description=(
            "Run representative CacheService operations on the embedded memory backend and "
            "print ops/s with p50/p99 latency (timed per batch of 100 operations)."
        ),
    )
    bench.add_argument(
        "--keys", type=_positive_int, default=100_000, help="distinct keys (default 100000)"
    )
    duration = bench.add_mutually_exclusive_group()
    duration.add_argument(
        "--seconds",
        type=_positive_float,
        default=DEFAULT_SECONDS,
        help=f"timed seconds per operation (default {DEFAULT_SECONDS})",
    )
    duration.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_SECONDS} s per operation, for a smoke test",
    )
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
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
    seconds = QUICK_SECONDS if args.quick else args.seconds
    results, meta = run_bench(args.keys, seconds, progress=sys.stderr)
    print(
        f"cachebolt bench: {meta['backend']} backend, {args.keys:,} keys, {seconds:g} s per "
        f"operation, Python {meta['python']}"
    )
    print(format_table(results))
    if args.json is not None:
        payload = {**meta, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
