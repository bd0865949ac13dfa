"""Memory per key: RSS growth for 1M keys of 10 bytes with 50-byte values and a TTL.

Each leg runs in a fresh subprocess (`--leg NAME` prints one JSON line), so one leg's heap never
inflates another's. Keys and values are made inside the insert loop, so whatever a store keeps
(its own copy in Rust, or the Python objects themselves) is in the growth; the transient objects
of the loop are reused by the allocator and cost nothing. Comparable to Redis `used_memory`.

Legs:
- `cachebolt`: `MemoryStore.set(key, value_bytes, ttl=3600)` (target <= 140 B/key).
- `moka-py`: `Moka.set(key, value_bytes, ttl=3600)` holding the same bytes objects.
- `floor`: dict of key -> (bytes, monotonic deadline), as `benches/floor.py`.
- `cachetools` (`TTLCache`), `theine` (`Cache.set(k, v, ttl)`): holding the same bytes objects.
- `redis-server`: a private server (`SET k v EX 3600`, pipelined); `INFO memory` used_memory
  growth, the same key and value bytes.

Run: `python benches/memory_per_key.py [--keys 1000000] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LEGS = ("cachebolt", "floor", "cachetools", "moka-py", "theine", "redis-server")
TARGET_BYTES_PER_KEY = 140
TTL = 3600.0
KEY_BYTES = 10
VALUE_BYTES = 50


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def _key(i: int) -> str:
    return f"k{i:09d}"  # 10 bytes


def _value(i: int) -> bytes:
    return b"v%049d" % i  # 50 bytes


def measure_leg(leg: str, n: int) -> dict[str, Any]:
    """Insert `n` keys into a fresh store of kind `leg` in this process; RSS growth per key."""
    assert len(_key(n - 1)) == KEY_BYTES and len(_value(n - 1)) == VALUE_BYTES
    store: Any
    if leg == "cachebolt":
        from cachebolt._core import MemoryStore

        store = MemoryStore(cleanup_interval_seconds=None)
        setter = store.set
    elif leg == "moka-py":
        import moka_py

        store = moka_py.Moka(2 * n)
        setter = store.set
    elif leg == "floor":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from floor import FloorCache

        store = FloorCache()
        setter = store.set_bytes
    elif leg == "cachetools":
        import cachetools

        store = cachetools.TTLCache(maxsize=2 * n, ttl=TTL)
        setter = lambda k, v, _ttl: store.__setitem__(k, v)  # noqa: E731
    elif leg == "theine":
        from datetime import timedelta

        import theine

        store = theine.Cache(2 * n)
        ttl = timedelta(seconds=TTL)
        setter = lambda k, v, _ttl: store.set(k, v, ttl)  # noqa: E731
    elif leg == "redis-server":
        return _measure_redis(n)
    else:
        raise ValueError(f"unknown leg {leg!r}")
    before = _rss()
    started = time.perf_counter()
    for i in range(n):
        setter(_key(i), _value(i), TTL)
    elapsed = time.perf_counter() - started
    if leg == "moka-py":
        store.run_pending_tasks()
    after = _rss()
    assert store.count() == n if leg == "moka-py" else len(store) == n
    extra: dict[str, Any] = {}
    if leg == "cachebolt":
        stats = store.stats()
        extra["used_bytes_per_key"] = round(stats.get("used_bytes", 0) / n, 1)
    return {
        "leg": leg,
        "keys": n,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "bytes_per_key": round((after - before) / n, 1),
        "insert_ns_per_key": round(elapsed / n * 1e9),
        **extra,
    }


def _measure_redis(n: int) -> dict[str, Any]:
    """`used_memory` growth of a private redis-server storing the same keys and values."""
    import importlib.util
    import tempfile

    path = Path(__file__).resolve().parent.parent / "tests" / "_servers.py"
    spec = importlib.util.spec_from_file_location("_servers", path)
    assert spec is not None and spec.loader is not None
    servers = importlib.util.module_from_spec(spec)
    sys.modules["_servers"] = servers
    spec.loader.exec_module(servers)
    with tempfile.TemporaryDirectory(prefix="cachebolt-mem-") as tmp:
        server = servers.RedisServer(tmp)
        server.start()
        try:
            client = server.client()
            before = int(client.info("memory")["used_memory"])
            started = time.perf_counter()
            for start in range(0, n, 10_000):
                pipe = client.pipeline(transaction=False)
                for i in range(start, min(n, start + 10_000)):
                    pipe.set(_key(i), _value(i), ex=int(TTL))
                pipe.execute()
            elapsed = time.perf_counter() - started
            info = client.info("memory")
            assert client.dbsize() == n
            client.close()
        finally:
            server.stop()
    after = int(info["used_memory"])
    return {
        "leg": "redis-server",
        "keys": n,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "bytes_per_key": round((after - before) / n, 1),
        "insert_ns_per_key": round(elapsed / n * 1e9),
    }


def run_all(n: int, legs: tuple[str, ...] = LEGS) -> list[dict[str, Any]]:
    """Every leg in its own fresh interpreter; a leg that fails reports its error."""
    results = []
    for leg in legs:
        proc = subprocess.run(
            [sys.executable, __file__, "--leg", leg, "--keys", str(n)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            error = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            results.append({"leg": leg, "keys": n, "error": error})
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the results, with cachebolt's target."""
    lines = [
        f"### Memory per key ({results[0]['keys']:,} keys, {KEY_BYTES} B key + {VALUE_BYTES} B "
        f"value, TTL {TTL:.0f} s; RSS growth, fresh process per leg; redis-server: INFO "
        "memory used_memory growth)",
        "",
        "| store | bytes/key (RSS) | store's own count | insert ns/key | target |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['leg']} | error: {r['error']} | | | |")
            continue
        target = ""
        if r["leg"] == "cachebolt":
            ok = r["bytes_per_key"] <= TARGET_BYTES_PER_KEY
            target = f"<= {TARGET_BYTES_PER_KEY}: {'met' if ok else 'MISSED'}"
        own = r.get("used_bytes_per_key", "")
        per_key, insert = f"{r['bytes_per_key']:.1f}", f"{r['insert_ns_per_key']:,}"
        lines.append(f"| {r['leg']} | {per_key} | {own} | {insert} | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--leg", choices=LEGS, help="measure one leg in this process (JSON line)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.leg:
        print(json.dumps(measure_leg(args.leg, args.keys)))
        return 0
    results = run_all(args.keys)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
