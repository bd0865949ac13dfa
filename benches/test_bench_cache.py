"""get hit / get miss / set: cachebolt CacheService (memory backend) vs the floor and the peers.

Legs:
- `cachebolt`: `CacheService().get/set` (JSON round trip through orjson, Rust store) - reference.
- `floor`: `benches/floor.py`, a dict of (orjson bytes, deadline) - the goal is <= 1.10x of it.
- `cachetools`, `theine`, `moka-py`: store the dict object itself (no serialization at all), so
  they are what a user gives up JSON-compatibility for. `cachetools` is `TTLCache.get(k)` (the
  brief's API); `cachetools[k]` is its faster subscript form.
- `core.*`: the bare `MemoryStore` calls, to split the service's cost into Rust call + codec.

Every leg loops over the same 100k shuffled keys; TTL 300 s where the API takes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import cachetools
import moka_py
import orjson
import pytest
import theine
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import Measure
from floor import FloorCache

TTL = 300
Item = tuple[str, dict[str, Any]]


class Leg:
    """One contender: a populated (or empty) cache and the loops that drive it."""

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.close: Callable[[], object] = lambda: None
        cap = 2 * n + 10
        if name == "cachebolt":
            service = CacheService()
            self.obj: Any = service
            self.close = service.close
        elif name == "floor":
            self.obj = FloorCache()
        elif name.startswith("cachetools"):
            self.obj = cachetools.TTLCache(maxsize=cap, ttl=TTL)
        elif name == "theine":
            self.obj = theine.Cache(cap)
        elif name == "moka-py":
            self.obj = moka_py.Moka(cap)
        elif name.startswith("core."):
            store = MemoryStore()
            self.obj = store
            self.close = store.close
        else:
            raise ValueError(name)

    def fill(self, items: list[Item]) -> None:
        """Store every item (untimed), the same way `set_loop` would."""
        self.set_loop(items)()

    def set_loop(self, items: list[Item]) -> Callable[[], None]:
        """A loop that stores every (key, value) with the leg's set API and TTL."""
        obj = self.obj
        if self.name.startswith("cachetools"):

            def loop_subscript() -> None:
                for k, v in items:
                    obj[k] = v

            return loop_subscript
        if self.name.startswith("core."):
            blobs = [(k, orjson.dumps(v)) for k, v in items]
            store_set = obj.set

            def loop_bytes() -> None:
                for k, b in blobs:
                    store_set(k, b, TTL)

            return loop_bytes
        ttl: Any = timedelta(seconds=TTL) if self.name == "theine" else TTL
        setter = obj.set

        def loop() -> None:
            for k, v in items:
                setter(k, v, ttl)

        return loop

    def get_loop(self, keys: list[str]) -> Callable[[], None]:
        """A loop that reads every key with the leg's get API."""
        obj = self.obj
        if self.name == "cachetools[k]":

            def loop_subscript() -> None:
                for k in keys:
                    try:  # noqa: SIM105 - contextlib.suppress would be timed too
                        obj[k]
                    except KeyError:
                        pass

            return loop_subscript
        if self.name == "core.get+orjson.loads":
            store_get = obj.get
            loads = orjson.loads

            def loop_decode() -> None:
                for k in keys:
                    b = store_get(k)
                    if b is not None:
                        loads(b)

            return loop_decode
        getter = obj.get

        def loop() -> None:
            for k in keys:
                getter(k)

        return loop


@pytest.fixture
def leg(request: pytest.FixtureRequest, keys: list[str]) -> Iterator[Leg]:
    contender = Leg(request.param, len(keys))
    yield contender
    contender.close()


GET_LEGS = [
    "cachebolt",
    "floor",
    "cachetools",
    "cachetools[k]",
    "theine",
    "moka-py",
    "core.get",
    "core.get+orjson.loads",
]
SET_LEGS = ["cachebolt", "floor", "cachetools", "theine", "moka-py", "core.set"]


@pytest.mark.benchmark(group="get-hit")
@pytest.mark.parametrize("leg", GET_LEGS, indirect=True)
def test_get_hit(leg: Leg, measure: Measure, keys: list[str], items: list[Item]) -> None:
    leg.fill(items)
    measure(leg.get_loop(keys), len(keys), reference=leg.name == "cachebolt")


@pytest.mark.benchmark(group="get-miss")
@pytest.mark.parametrize("leg", GET_LEGS, indirect=True)
def test_get_miss(leg: Leg, measure: Measure, missing_keys: list[str], items: list[Item]) -> None:
    leg.fill(items)
    measure(leg.get_loop(missing_keys), len(missing_keys), reference=leg.name == "cachebolt")


@pytest.mark.benchmark(group="set")
@pytest.mark.parametrize("leg", SET_LEGS, indirect=True)
def test_set_overwrite(leg: Leg, measure: Measure, items: list[Item]) -> None:
    """Steady state: every key is already present, each set replaces the value and TTL."""
    leg.fill(items)
    measure(leg.set_loop(items), len(items), reference=leg.name == "cachebolt")


@pytest.mark.benchmark(group="set-insert")
@pytest.mark.parametrize("name", SET_LEGS)
def test_set_insert(name: str, measure: Measure, items: list[Item]) -> None:
    """Every set inserts a new key: each round starts from a fresh cache (built untimed)."""
    live: list[Leg] = []

    def fresh() -> tuple[tuple[Callable[[], None]], dict[str, Any]]:
        while live:
            live.pop().close()
        live.append(Leg(name, len(items)))
        return (live[0].set_loop(items),), {}

    def run(loop: Callable[[], None]) -> None:
        loop()

    try:
        measure(run, len(items), setup=fresh, reference=name == "cachebolt")
    finally:
        while live:
            live.pop().close()
