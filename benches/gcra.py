"""`algorithm="gcra"` vs throttled-py's GCRA, in memory and on one private local redis-server.

Legs, each hitting every id once per round (`limit` per `window`, burst `limit`):
- memory: `cachebolt` (`CacheService().hit_rate_limit(..., algorithm="gcra")`), `core` (the bare
  `MemoryStore.rate_limit`), `throttled` (`Throttled(using="gcra", store=MemoryStore())`).
- redis: `cachebolt redis` (`CacheService` on the server), `throttled redis` (`RedisStore`).
- two keys per hit (a per-user and a per-IP limit), both backends: `cachebolt 2 keys`
  (`hit_rate_limits`, all or nothing: one store call, or one script on Redis) vs
  `cachebolt 2 calls` (two `hit_rate_limit` calls, not atomic: what a caller would write without
  it; ratios against `cachebolt` / `cachebolt redis`).
Scenarios: `under` (limit 1,000,000 per hour: every hit allowed) and `denied` (limit 5, each id
filled first: every hit denied). The legs run interleaved round by round (see interleaved.py);
the ratio is taken per round against the first leg, then the median.

Run: `python benches/gcra.py [--rounds 15] [--keys 20000] [--redis-keys 5000]`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent / "tests"))

import throttled
from _servers import RedisServer
from cachebolt import CacheConfig, CacheService
from cachebolt._core import MemoryStore

WINDOW = 3600
LIMITS = {"under": 1_000_000, "denied": 5}
Loop = Callable[[], object]


def legs(url: str, limit: int) -> dict[str, dict[str, Callable[[str], object]]]:
    """Per backend, leg name -> one hit of `limit` per hour on a key."""
    quota = throttled.per_duration(timedelta(seconds=WINDOW), limit)
    memory_service = CacheService()
    memory, memory_many = memory_service.hit_rate_limit, memory_service.hit_rate_limits
    core = MemoryStore().rate_limit
    redis_service = CacheService(CacheConfig(enabled=True, url=url))
    assert redis_service.is_redis_available()
    ours_redis, ours_redis_many = redis_service.hit_rate_limit, redis_service.hit_rate_limits
    peer = throttled.Throttled(using="gcra", quota=quota, store=throttled.MemoryStore())
    peer_redis = throttled.Throttled(
        using="gcra", quota=quota, store=throttled.RedisStore(server=url)
    )
    return {
        "memory": {
            "cachebolt": lambda k: memory(k, limit, WINDOW, algorithm="gcra"),
            "core": lambda k: core(k, limit, WINDOW, 1, "gcra"),
            "throttled": lambda k: peer.limit(k),
            "cachebolt 2 keys": lambda k: memory_many(
                [(k, limit, WINDOW), (f"{k}:ip", limit, WINDOW)], algorithm="gcra"
            ),
            "cachebolt 2 calls": lambda k: (
                memory(k, limit, WINDOW, algorithm="gcra"),
                memory(f"{k}:ip", limit, WINDOW, algorithm="gcra"),
            ),
        },
        "redis": {
            "cachebolt redis": lambda k: ours_redis(k, limit, WINDOW, algorithm="gcra"),
            "throttled redis": lambda k: peer_redis.limit(k),
            "cachebolt redis 2 keys": lambda k: ours_redis_many(
                [(k, limit, WINDOW), (f"{k}:ip", limit, WINDOW)], algorithm="gcra"
            ),
            "cachebolt redis 2 calls": lambda k: (
                ours_redis(k, limit, WINDOW, algorithm="gcra"),
                ours_redis(f"{k}:ip", limit, WINDOW, algorithm="gcra"),
            ),
        },
    }


def timed(hit: Callable[[str], object], ids: list[str]) -> float:
    """Seconds for one pass over `ids`, the collector off."""
    gc.disable()
    try:
        started = time.perf_counter()
        for k in ids:
            hit(k)
        return time.perf_counter() - started
    finally:
        gc.enable()


def run(rounds: int, n_memory: int, n_redis: int, url: str) -> str:
    lines = [
        "| scenario | backend | leg | median µs per hit | ratio to the first leg (median) |",
        "|---|---|---|---|---|",
    ]
    for scenario, limit in LIMITS.items():
        for backend, leg_hits in legs(url, limit).items():
            n = n_memory if backend == "memory" else n_redis
            ids = [f"{scenario}:{backend}:{i}" for i in range(n)]
            if scenario == "denied":
                for hit in leg_hits.values():
                    for _ in range(limit):
                        timed(hit, ids)
            times: dict[str, list[float]] = {name: [] for name in leg_hits}
            for _ in range(rounds):
                for name, hit in leg_hits.items():
                    times[name].append(timed(hit, ids))
            first = next(iter(times))
            for name, samples in times.items():
                ratio = statistics.median(s / f for s, f in zip(samples, times[first], strict=True))
                per_hit = statistics.median(samples) / n * 1e6
                lines.append(f"| {scenario} | {backend} | {name} | {per_hit:.2f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--redis-keys", type=int, default=5_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server: Any = RedisServer(tmp, extra_args=("--save", "", "--appendonly", "no"))
        server.start()
        try:
            print(run(args.rounds, args.keys, args.redis_keys, f"redis://127.0.0.1:{server.port}"))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
