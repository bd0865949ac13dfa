"""AsyncCacheService get/set (memory backend) vs cashews `mem://` and aiocache SimpleMemoryCache.

Each round runs one coroutine that awaits the call for each of the 100k keys, on one event loop.
cashews and aiocache store the dict object (no serialization); cachebolt JSON-encodes as always.
`floor` awaits an `async def` around `FloorCache` (the price of the coroutine layer alone).
Peers that are not installed are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from cachebolt import AsyncCacheService
from conftest import Measure
from floor import FloorCache

TTL = 300
LEGS = ["cachebolt", "floor", "cashews", "aiocache"]
Item = tuple[str, dict[str, Any]]


class AsyncFloor:
    """`FloorCache` behind `async def` methods."""

    def __init__(self) -> None:
        self._cache = FloorCache()

    async def get(self, key: str) -> Any:
        return self._cache.get(key)

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._cache.set(key, value, ttl)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@pytest.fixture
def acache(request: pytest.FixtureRequest, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """(leg name, object with async get(k) and a set(k, v) coroutine factory with TTL)."""
    name = request.param
    if name in ("cashews", "aiocache") and importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install {name})")

    async def build() -> tuple[Any, Callable[[], Coroutine[Any, Any, object]]]:
        if name == "cachebolt":
            service = AsyncCacheService()
            return service, service.close
        if name == "floor":
            floor = AsyncFloor()
            return floor, _noop
        if name == "cashews":
            from cashews import Cache

            cache = Cache()
            cache.setup("mem://?size=1000000")
            return cache, cache.close
        from aiocache import SimpleMemoryCache

        simple = SimpleMemoryCache()
        return simple, simple.close

    obj, close = loop.run_until_complete(build())
    yield name, obj
    loop.run_until_complete(close())


async def _noop() -> None:
    return None


def _setter(name: str, obj: Any) -> Callable[[str, Any], Coroutine[Any, Any, object]]:
    if name == "cashews":
        cashews_set = obj.set
        return lambda k, v: cashews_set(k, v, expire=TTL)
    if name == "aiocache":
        aiocache_set = obj.set
        return lambda k, v: aiocache_set(k, v, ttl=TTL)
    plain_set = obj.set
    return lambda k, v: plain_set(k, v, TTL)


@pytest.mark.benchmark(group="async-get-hit")
@pytest.mark.parametrize("acache", LEGS, indirect=True)
def test_async_get_hit(
    acache: Any,
    measure: Measure,
    loop: asyncio.AbstractEventLoop,
    keys: list[str],
    items: list[Item],
) -> None:
    name, obj = acache
    set_ = _setter(name, obj)

    async def fill() -> None:
        for k, v in items:
            await set_(k, v)

    loop.run_until_complete(fill())
    get = obj.get
    assert loop.run_until_complete(get(keys[0])) == items[0][1]

    async def run() -> None:
        for k in keys:
            await get(k)

    measure(
        lambda: loop.run_until_complete(run()), len(keys), rounds=5, reference=name == "cachebolt"
    )


@pytest.mark.benchmark(group="async-set")
@pytest.mark.parametrize("acache", LEGS, indirect=True)
def test_async_set(
    acache: Any, measure: Measure, loop: asyncio.AbstractEventLoop, items: list[Item]
) -> None:
    """Overwrite after the warm-up round. cashews/aiocache pass the TTL by keyword (their API)."""
    name, obj = acache
    setter = obj.set

    if name == "cashews":

        async def run() -> None:
            for k, v in items:
                await setter(k, v, expire=TTL)

    elif name == "aiocache":

        async def run() -> None:
            for k, v in items:
                await setter(k, v, ttl=TTL)

    else:

        async def run() -> None:
            for k, v in items:
                await setter(k, v, TTL)

    measure(
        lambda: loop.run_until_complete(run()), len(items), rounds=5, reference=name == "cachebolt"
    )
