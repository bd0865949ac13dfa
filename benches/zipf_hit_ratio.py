"""Eviction quality: hit ratio under a Zipf(s=1.0) workload with the cache at 10% of the keys.

100k distinct keys, 1M requests drawn i.i.d. from Zipf(s) (fixed seed, popularity ranks shuffled
over the key names), cache bounded at 10,000 keys. Each request is `get`; on a miss, `set`.
Legs: cachebolt `MemoryStore(max_keys=10000)`; cachetools `LRUCache(10000)`; an ideal LRU
(`OrderedDict`, exact recency); moka-py and theine (W-TinyLFU) for context; and the static
optimum, the request share of the 10,000 truly most popular keys (the best any policy can do on
an i.i.d. stream, up to warm-up).

Run: `python benches/zipf_hit_ratio.py [--keys 100000] [--requests 1000000] [--s 1.0]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 20261128
VALUE = b"x" * 50


def zipf_requests(n_keys: int, n_requests: int, s: float, seed: int = SEED) -> list[str]:
    """`n_requests` keys drawn i.i.d. with P(rank r) proportional to 1 / r**s."""
    rng = random.Random(seed)
    names = [f"item:{i:06d}" for i in range(n_keys)]
    rng.shuffle(names)  # rank -> key name, so popularity is unrelated to the name
    cum_weights = list(itertools.accumulate(1.0 / (r**s) for r in range(1, n_keys + 1)))
    return rng.choices(names, cum_weights=cum_weights, k=n_requests)


def _run(get: Callable[[str], Any], put: Callable[[str, bytes], object], reqs: list[str]) -> int:
    hits = 0
    for k in reqs:
        if get(k) is None:
            put(k, VALUE)
        else:
            hits += 1
    return hits


def lru_ideal(capacity: int, reqs: list[str]) -> int:
    """Exact LRU over an OrderedDict."""
    od: OrderedDict[str, bytes] = OrderedDict()
    hits = 0
    move, pop = od.move_to_end, od.popitem
    for k in reqs:
        if k in od:
            move(k)
            hits += 1
        else:
            od[k] = VALUE
            if len(od) > capacity:
                pop(last=False)
    return hits


def measure(capacity: int, reqs: list[str]) -> list[dict[str, Any]]:
    """Hit counts of every leg over the same request stream."""
    results: list[dict[str, Any]] = []

    def add(leg: str, fn: Callable[[], int]) -> None:
        started = time.perf_counter()
        try:
            hits = fn()
        except Exception as exc:  # a missing peer or a broken leg is reported, not fatal
            results.append({"leg": leg, "error": f"{type(exc).__name__}: {exc}"})
            return
        elapsed = time.perf_counter() - started
        results.append(
            {
                "leg": leg,
                "hits": hits,
                "hit_ratio": hits / len(reqs),
                "ns_per_request": round(elapsed / len(reqs) * 1e9),
            }
        )

    def cachebolt() -> int:
        from cachebolt._core import MemoryStore

        store = MemoryStore(max_keys=capacity, cleanup_interval_seconds=None)
        try:
            hits = _run(store.get, store.set, reqs)
            assert len(store) <= capacity, f"{len(store)} keys held, bound {capacity}"
            return hits
        finally:
            store.close()

    def cachetools_lru() -> int:
        import cachetools

        cache: cachetools.LRUCache[str, bytes] = cachetools.LRUCache(capacity)
        return _run(cache.get, cache.__setitem__, reqs)

    def moka() -> int:
        import moka_py

        cache: Any = moka_py.Moka(capacity)
        return _run(cache.get, cache.set, reqs)

    def theine_lfu() -> int:
        import theine

        cache: Any = theine.Cache(capacity)
        return _run(lambda k: cache.get(k)[0], cache.set, reqs)

    add("cachebolt MemoryStore", cachebolt)
    add("cachetools LRUCache", cachetools_lru)
    add("ideal LRU (OrderedDict)", lambda: lru_ideal(capacity, reqs))
    add("moka-py (TinyLFU)", moka)
    add("theine (W-TinyLFU)", theine_lfu)
    top = sum(c for _, c in Counter(reqs).most_common(capacity))
    results.append(
        {"leg": "static optimum (top-N keys)", "hits": top, "hit_ratio": top / len(reqs)}
    )
    return results


def table(results: list[dict[str, Any]], n_keys: int, n_requests: int, s: float, cap: int) -> str:
    """Markdown table, hit ratios with the gap to the ideal LRU."""
    lru = next((r["hit_ratio"] for r in results if r["leg"].startswith("ideal LRU")), None)
    lines = [
        f"### Zipf hit ratio (s={s}, {n_keys:,} keys, {n_requests:,} requests, max_keys={cap:,})",
        "",
        "| cache | hit ratio | vs ideal LRU | ns/request |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['leg']} | error: {r['error']} | | |")
            continue
        delta = f"{(r['hit_ratio'] - lru) * 100:+.2f} pt" if lru is not None else ""
        ns = f"{r['ns_per_request']:,}" if "ns_per_request" in r else ""
        lines.append(f"| {r['leg']} | {r['hit_ratio']:.2%} | {delta} | {ns} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--s", type=float, default=1.0, help="Zipf exponent")
    parser.add_argument("--capacity", type=int, help="max keys (default: 10%% of --keys)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    capacity = args.capacity or args.keys // 10
    reqs = zipf_requests(args.keys, args.requests, args.s)
    results = measure(capacity, reqs)
    print(table(results, args.keys, args.requests, args.s, capacity))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
