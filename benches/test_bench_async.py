"""The asyncio legs of get hit / get miss / set / get_or_set: AsyncCacheService vs its peers.

Each round runs one coroutine that awaits the call for each of the `n` keys, on one event loop.
Legs (in the same scenario groups as the blocking ones, so the report shows them side by side):
- `cachebolt async`: `AsyncCacheService` on the memory backend (JSON round trip as always).
- `floor async`: an `async def` around `FloorCache` (the price of the coroutine layer alone).
- `cashews`: `Cache().setup("mem://")`, `aiocache`: `SimpleMemoryCache` - both store the dict
  object (no serialization). Skipped when not installed. At 5-25 µs per call they hold and loop
  over at most the first 100k keys (the note says so at 1M).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from cachebolt import AsyncCacheService
from conftest import PEER_OPS, Measure, aloop1, aloop2
from floor import FloorCache

TTL = 3600  # longer than a whole run at 1M keys: a key must not expire mid-module
LEGS = ["cachebolt async", "floor async", "cashews", "aiocache"]
PEERS = ("cashews", "aiocache")
Item = tuple[str, Any]


class AsyncFloor:
    """`FloorCache` behind `async def` methods."""

    def __init__(self) -> None:
        self._cache = FloorCache()

    async def get(self, key: str) -> Any:
        return self._cache.get(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._cache.set(key, value, ttl)

    async def get_or_set(self, key: str, ttl: float | None, fn: Any) -> Any:
        return self._cache.get_or_set(key, ttl, fn)

    async def close(self) -> None:
        return None


def _build(name: str) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def build() -> Any:
        if name == "cachebolt async":
            return AsyncCacheService()
        if name == "floor async":
            return AsyncFloor()
        if name == "cashews":
            from cashews import Cache

            cache = Cache()
            cache.setup("mem://?size=10000000")
            return cache
        from aiocache import SimpleMemoryCache

        return SimpleMemoryCache()

    return build


def setter(name: str, obj: Any) -> Callable[[str, Any], Coroutine[Any, Any, object]]:
    """`await set(k, v)` with the leg's TTL keyword."""
    if name == "cashews":
        cashews_set = obj.set
        return lambda k, v: cashews_set(k, v, expire=TTL)
    if name == "aiocache":
        aiocache_set = obj.set
        return lambda k, v: aiocache_set(k, v, ttl=TTL)
    plain_set = obj.set
    return lambda k, v: plain_set(k, v, TTL)


def work(name: str, data: list[Any]) -> tuple[list[Any], str]:
    """The slice a leg runs over, and the note saying so when it is not all of it."""
    if name in PEERS and len(data) > PEER_OPS:
        return data[:PEER_OPS], f"first {PEER_OPS:,} keys"
    return data, ""


class AsyncPool:
    """Populated async caches of one module and size."""

    def __init__(self, loop: asyncio.AbstractEventLoop, items: list[Item]) -> None:
        self.loop, self.items = loop, items
        self.caches: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name in PEERS:
            pytest.importorskip(name)
        if name not in self.caches:
            obj = self.loop.run_until_complete(_build(name)())
            aloop2(self.loop, setter(name, obj), work(name, self.items)[0])()
            self.caches[name] = obj
        return self.caches[name]

    def close(self) -> None:
        for obj in self.caches.values():
            self.loop.run_until_complete(obj.close())
        self.caches.clear()


@pytest.fixture(scope="module")
def apool(aio_loop: asyncio.AbstractEventLoop, items: list[Item]) -> Iterator[AsyncPool]:
    shared = AsyncPool(aio_loop, items)
    yield shared
    shared.close()


@pytest.mark.benchmark(group="get-hit")
@pytest.mark.parametrize("leg", LEGS)
def test_async_get_hit(
    leg: str, apool: AsyncPool, measure: Measure, aio_loop: Any, keys: list[str]
) -> None:
    obj = apool.get(leg)
    assert aio_loop.run_until_complete(obj.get(keys[0])) == apool.items[0][1]
    ks, note = work(leg, keys)
    measure(aloop1(aio_loop, obj.get, ks), len(ks), note=note)


@pytest.mark.benchmark(group="get-miss")
@pytest.mark.parametrize("leg", LEGS)
def test_async_get_miss(
    leg: str, apool: AsyncPool, measure: Measure, aio_loop: Any, missing_keys: list[str]
) -> None:
    obj = apool.get(leg)
    ks, note = work(leg, missing_keys)
    measure(aloop1(aio_loop, obj.get, ks), len(ks), note=note)


@pytest.mark.benchmark(group="set")
@pytest.mark.parametrize("leg", LEGS)
def test_async_set(
    leg: str, apool: AsyncPool, measure: Measure, aio_loop: Any, items: list[Item]
) -> None:
    """Overwrite. cashews/aiocache pass the TTL by keyword (their API)."""
    obj = apool.get(leg)
    its, note = work(leg, items)
    measure(aloop2(aio_loop, setter(leg, obj), its), len(its), note=note)


@pytest.mark.benchmark(group="get_or_set-hit")
@pytest.mark.parametrize("leg", ["cachebolt async", "floor async", "cashews"])
def test_async_get_or_set_hit(
    leg: str, apool: AsyncPool, measure: Measure, aio_loop: Any, keys: list[str]
) -> None:
    obj = apool.get(leg)
    keys, note = work(leg, keys)

    async def compute() -> object:
        raise AssertionError("a hit never computes")

    if leg == "cashews":
        get_or_set = obj.get_or_set

        async def run() -> None:
            for k in keys:
                await get_or_set(k, compute, expire=TTL)

    else:
        get_or_set = obj.get_or_set

        async def run() -> None:
            for k in keys:
                await get_or_set(k, TTL, compute)

    measure(lambda: aio_loop.run_until_complete(run()), len(keys), note=note)
