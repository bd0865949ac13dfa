"""Smoke test of an installed cachebolt: memory and Redis, blocking and asyncio.

    python scripts/smoke.py [--server PATH]

Run by an interpreter whose environment has cachebolt installed from a wheel (not from this
tree): it refuses to run when `cachebolt` would be imported from the source tree. It starts its
own Redis-compatible server (`redis-server` on PATH unless `--server`) on a free loopback port,
stops it by its pid, and exits non-zero on the first failed check.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exercise(cache: object) -> None:
    """The same calls on any blocking service."""
    from cachebolt import CacheService

    assert isinstance(cache, CacheService)
    cache.set("k", {"n": 1}, ttl=60)
    assert cache.get("k") == {"n": 1}
    assert cache.get_or_set("g", 60, lambda: [1, 2]) == [1, 2]
    token = cache.acquire_lock("lock", 10_000)
    assert token is not None and cache.acquire_lock("lock", 10_000) is None
    assert cache.release_lock("lock", token)
    allowed = [cache.check_rate_limit("rl", 3, 60) for _ in range(4)]
    assert allowed == [True, True, True, False], allowed
    assert cache.incr("n") == 1 and cache.sadd("s", "a", "b") == 2


async def exercise_async(url: str | None) -> None:
    from cachebolt import AsyncCacheService, CacheConfig

    config = CacheConfig(enabled=url is not None, url=url) if url else CacheConfig()
    async with AsyncCacheService(config) as cache:
        await cache.set("ak", "v", ttl=60)
        assert await cache.get("ak") == "v"
        token = await cache.acquire_lock("alock", 10_000)
        assert token is not None and await cache.release_lock("alock", token)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=shutil.which("redis-server"), help="server binary")
    args = parser.parse_args()

    import cachebolt
    from cachebolt import CacheConfig, CacheService

    where = Path(cachebolt.__file__).resolve()
    if SOURCE in where.parents:
        print(f"cachebolt is imported from the source tree ({where}), not a wheel", file=sys.stderr)
        return 2
    print(f"cachebolt {cachebolt.__version__} from {where.parent}")

    with CacheService() as cache:
        exercise(cache)
    asyncio.run(exercise_async(None))
    print("memory: ok")

    if not args.server:
        print("no redis-server on PATH: the Redis smoke needs one", file=sys.stderr)
        return 2
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [args.server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            with CacheService(CacheConfig(enabled=True, url=url)) as cache:
                exercise(cache)
                assert cache.is_redis_available(), "the service fell back to memory"
                assert cache.get_client().exists("k") == 1, "the value is not in Redis"
            asyncio.run(exercise_async(url))
            print("redis: ok")
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
