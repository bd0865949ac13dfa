"""acquire_lock + release_lock: cachebolt vs two bare PyO3 calls (and redis-py's Lock on fakeredis).

One operation = acquire a free lock then release it with its token, over the `n` keys; the
store already holds `n` plain keys (untimed), so the keyspace has the size of the scenario.
- `cachebolt`: `CacheService.acquire_lock(k, 10_000)` + `release_lock(k, token)` (reference);
  `cachebolt async`: the same two awaits on `AsyncCacheService`; `core`: the bare `MemoryStore`.
- `floor: 2x bare PyO3 call`: `MemoryStore.exists(k)` twice - crossing into Rust twice with a
  str argument, i.e. what the lock would cost if the token and the bookkeeping were free
  (goal: cachebolt within 1.5x).
- `floor: 2x len`: `len(store)` twice - two argument-less PyO3 calls.
- `redis-py Lock (fakeredis)`: `Lock.acquire(blocking=False)` + `release()` on fakeredis (needs
  `lupa` for the Lua release; skipped when it is not installed), first `BENCH_SLOW_OPS` keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import SLOW_OPS, Measure, new_async_service

TTL_MS = 10_000
LEGS = [
    "cachebolt",
    "cachebolt async",
    "core",
    "floor: 2x bare PyO3 call",
    "floor: 2x len",
    "redis-py Lock (fakeredis)",
]


@pytest.fixture(scope="module")
def stores(keys: list[str], aio_loop: Any) -> Iterator[dict[str, Any]]:
    """A populated service, async service and bare store for the module's size."""
    sync, store = CacheService(), MemoryStore()
    asvc = new_async_service(aio_loop)
    blob = b"1"
    for k in keys:
        store.set(f"fill:{k}", blob)
    sync_set = sync.set
    for k in keys:
        sync_set(f"fill:{k}", 1)

    async def fill() -> None:
        for k in keys:
            await asvc.set(f"fill:{k}", 1)

    aio_loop.run_until_complete(fill())
    yield {"cachebolt": sync, "core": store, "cachebolt async": asvc}
    sync.close()
    store.close()
    aio_loop.run_until_complete(asvc.close())


@pytest.mark.benchmark(group="lock-acquire-release")
@pytest.mark.parametrize("leg", LEGS)
def test_lock(
    leg: str, stores: dict[str, Any], measure: Measure, keys: list[str], aio_loop: Any
) -> None:
    loop: Callable[[], None]
    ops, note = len(keys), ""
    if leg in ("cachebolt", "core"):
        acquire, release = stores[leg].acquire_lock, stores[leg].release_lock
        token = acquire(keys[0], TTL_MS)
        assert token is not None and release(keys[0], token)

        def loop() -> None:
            for k in keys:
                release(k, acquire(k, TTL_MS))

    elif leg == "cachebolt async":
        aacquire, arelease = stores[leg].acquire_lock, stores[leg].release_lock

        async def run() -> None:
            for k in keys:
                await arelease(k, await aacquire(k, TTL_MS))

        def loop() -> None:
            aio_loop.run_until_complete(run())

    elif leg == "floor: 2x bare PyO3 call":
        exists = stores["core"].exists

        def loop() -> None:
            for k in keys:
                exists(k)
                exists(k)

    elif leg == "floor: 2x len":
        size = stores["core"].__len__

        def loop() -> None:
            for _ in keys:
                size()
                size()

    else:
        pytest.importorskip("lupa", reason="fakeredis runs the Lua of redis-py's Lock with lupa")
        import fakeredis

        fake = fakeredis.FakeRedis()
        work = keys[:SLOW_OPS]
        ops, note = len(work), f"first {len(work):,} keys"

        def loop() -> None:
            for k in work:
                held = fake.lock(k, timeout=10)
                held.acquire(blocking=False)
                held.release()

    measure(loop, ops, note=note)
