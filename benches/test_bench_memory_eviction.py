"""The memory-per-key and Zipf hit-ratio scripts, run under `make bench`.

They measure bytes and hit ratios, not time: the benchmark fixture runs each once (so
`--benchmark-only` keeps them) and their tables join the end-of-session report.
`BENCH_MEMORY_KEYS` (default 1,000,000) scales the memory run down for a smoke test.
"""

from __future__ import annotations

import os
from typing import Any

import memory_per_key
import zipf_hit_ratio


def test_memory_per_key(benchmark: Any) -> None:
    n = int(os.environ.get("BENCH_MEMORY_KEYS", "1000000"))
    results = benchmark.pedantic(memory_per_key.run_all, args=(n,), rounds=1, iterations=1)
    benchmark.extra_info["report_md"] = memory_per_key.table(results)
    ours = next(r for r in results if r["leg"] == "cachebolt")
    assert "error" not in ours, ours
    target = memory_per_key.TARGET_BYTES_PER_KEY
    benchmark.extra_info["goals"] = [
        {
            "goal": f"memory: cachebolt <= {target} B/key",
            "measured": f"{ours['bytes_per_key']:.1f} B/key",
            "met": ours["bytes_per_key"] <= target,
        }
    ]


def test_zipf_hit_ratio(benchmark: Any) -> None:
    n_keys, n_requests, s = 100_000, 1_000_000, 1.0
    capacity = n_keys // 10
    reqs = zipf_hit_ratio.zipf_requests(n_keys, n_requests, s)
    results = benchmark.pedantic(
        zipf_hit_ratio.measure, args=(capacity, reqs), rounds=1, iterations=1
    )
    benchmark.extra_info["report_md"] = zipf_hit_ratio.table(
        results, n_keys, n_requests, s, capacity
    )
    by_leg = {r["leg"]: r for r in results}
    ours = by_leg["cachebolt MemoryStore"]
    assert "error" not in ours, ours
    lru = by_leg["ideal LRU (OrderedDict)"]["hit_ratio"]
    benchmark.extra_info["goals"] = [
        {
            "goal": "zipf: cachebolt hit ratio vs ideal LRU (no numeric goal)",
            "measured": f"{ours['hit_ratio']:.2%} vs {lru:.2%}",
            "met": None,
        }
    ]
