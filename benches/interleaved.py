"""Cross-check of the close-call ratios with the legs interleaved round by round.

pytest-benchmark runs one leg's rounds back to back, so on a shared or noisy machine a burst of
background load can land on one leg only. Here every round runs each leg once, in turn, on the
same data as the pytest scenarios, and the ratio is taken per round and then the median (and the
ratio of the per-leg minima). Use it when a goal of the ratio report is within noise.

Run: `python benches/interleaved.py [--rounds 15] [--keys 100000] [--only get-hit,set,decode]`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cachetools
import msgspec
import orjson
import theine
from cachebolt import CacheService
from conftest import build_keys, make_value
from floor import FloorCache

TTL = 300
Loop = Callable[[], object]


def scenarios(n: int) -> dict[str, dict[str, Loop]]:
    """Per scenario, leg name -> a loop over the n keys (first leg is the reference)."""
    keys = build_keys(n)
    items = [(k, make_value(int(k.rsplit(":", 1)[1]))) for k in keys]
    service, floor = CacheService(), FloorCache()
    ttl_cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=2 * n, ttl=TTL)
    lfu: Any = theine.Cache(2 * n)
    for k, v in items:
        service.set(k, v, TTL)
        floor.set(k, v, TTL)
        ttl_cache[k] = v
        lfu.set(k, v)

    def get_loop(get: Callable[[str], object]) -> Loop:
        def loop() -> None:
            for k in keys:
                get(k)

        return loop

    def set_loop(setter: Callable[[str, Any, int], object]) -> Loop:
        def loop() -> None:
            for k, v in items:
                setter(k, v, TTL)

        return loop

    def cachetools_set() -> None:
        for k, v in items:
            ttl_cache[k] = v

    blobs = [orjson.dumps(v) for _, v in items]
    decoder = msgspec.json.Decoder()

    def decode_loop(loads: Callable[[bytes], object]) -> Loop:
        def loop() -> None:
            for b in blobs:
                loads(b)

        return loop

    return {
        "get-hit": {
            "cachebolt": get_loop(service.get),
            "floor": get_loop(floor.get),
            "cachetools": get_loop(ttl_cache.get),
            "theine": get_loop(lfu.get),
        },
        "set": {
            "cachebolt": set_loop(service.set),
            "floor": set_loop(floor.set),
            "cachetools": cachetools_set,
        },
        "decode": {"orjson": decode_loop(orjson.loads), "msgspec": decode_loop(decoder.decode)},
    }


def run(n: int, rounds: int, only: list[str] | None) -> str:
    """Run every selected scenario interleaved; a Markdown table of ns/op and ratios."""
    lines = [
        f"### Interleaved cross-check ({n:,} keys, {rounds} rounds, legs alternate every round)",
        "",
        "| scenario | leg | ns/op median | ns/op min | ratio, median of rounds | ratio of minima |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, legs in scenarios(n).items():
        if only and name not in only:
            continue
        times: dict[str, list[float]] = {leg: [] for leg in legs}
        gc.collect()
        gc.disable()
        try:
            for loop in legs.values():
                loop()  # warm-up
            for _ in range(rounds):
                for leg, loop in legs.items():
                    start = time.perf_counter()
                    loop()
                    times[leg].append((time.perf_counter() - start) / n * 1e9)
        finally:
            gc.enable()
        ref_name = next(iter(legs))
        ref = times[ref_name]
        for leg, samples in times.items():
            per_round = statistics.median(s / r for s, r in zip(samples, ref, strict=True))
            lines.append(
                f"| {name} | {leg} | {statistics.median(samples):,.0f} | {min(samples):,.0f} "
                f"| {per_round:.2f}x | {min(samples) / min(ref):.2f}x |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", help="comma-separated scenarios (get-hit,set,decode)")
    args = parser.parse_args(argv)
    print(run(args.keys, args.rounds, args.only.split(",") if args.only else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
