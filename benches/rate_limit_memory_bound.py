"""Rate-limit state under the memory bound: rotating-IP keys through `check_rate_limit`.

An attacker rotating client IPs makes one new limit key per request. This sends `--keys` such keys
(limit 100 per hour) to a memory-mode service with `CACHE_MEMORY_MAX_BYTES` = `--bound-mib` and
prints one JSON line: RSS growth (from /proc, Linux), the bytes the store accounts (all entries,
and rate-limit state alone), the keys kept and the calls refused with `CapacityError`.

Run: `python benches/rate_limit_memory_bound.py [--keys 300000] [--bound-mib 16] [--record]`;
`--record` also appends the line to `.reliability/figures.jsonl` as the figure
`memory_bound.rotating_ips` (`make soak` runs it so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cachebolt import CacheConfig, CacheService, CapacityError


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=300_000)
    parser.add_argument("--bound-mib", type=int, default=16)
    parser.add_argument("--record", action="store_true", help="append it to the figures file")
    args = parser.parse_args()
    cache = CacheService(CacheConfig(memory_max_bytes=args.bound_mib * 2**20))
    base, refused = rss(), 0
    for i in range(args.keys):
        try:
            cache.check_rate_limit(f"ip:203.0.{i >> 8 & 255}.{i & 255}:{i}", 100, 3600)
        except CapacityError:
            refused += 1
    stats = cache.stats()
    mib = 2**20
    result = {
        "keys_sent": args.keys,
        "bound_mib": args.bound_mib,
        "rss_growth_mib": round((rss() - base) / mib, 1),
        "used_mib": round(stats["used_bytes"] / mib, 1),
        "rate_limit_mib": round(stats["rate_limit_bytes"] / mib, 1),
        "keys_kept": stats["keys"],
        "refused": refused,
    }
    print(json.dumps(result))
    cache.close()
    if args.record:
        # The tests' own recorder, so the figure lands where theirs do.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from reliability._figures import figure

        figure("memory_bound.rotating_ips", **result)


if __name__ == "__main__":
    main()
