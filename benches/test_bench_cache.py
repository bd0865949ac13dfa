"""get hit / get miss / set / insert / delete / get_or_set: cachebolt memory vs the floor and peers.

Legs (every one loops over the same `n` shuffled keys; TTL 1 hour where the API takes one):
- `cachebolt`: `CacheService().get/set/...` (JSON round trip through orjson, Rust store) - the
  reference of every ratio.
- `floor`: `benches/floor.py`, a dict of (orjson bytes, deadline) - goal: cachebolt <= 1.10x.
- `cachetools` (`TTLCache.get(k)` / `c[k] = v`), `cachetools[k]` (its subscript form), `theine`,
  `moka-py`: store the dict object itself (no serialization at all), so they are what a user
  gives up JSON-compatibility for.
- `fakeredis`: `FakeRedis().get/set` with the same orjson codec; ~50 µs per call, so its
  keyspace and loop are the first `BENCH_SLOW_OPS` keys (filling 1M keys would take an hour).
- `core.*`: the bare `MemoryStore` calls, to split the service's cost into Rust call + codec.
- `bare PyO3 call`: `MemoryStore.exists(k)` on an empty store - crossing into Rust with a str.

Scenarios: `get-hit`, `get-miss`, `set` (overwrite), `get-hit-int` / `set-int` (small int
values), `set-insert` (100k fresh keys into the populated store, removed untimed between
rounds), `delete` (of 100k extra keys stored untimed before each round), `get_or_set-hit`.
Populated stores are built once per module and size and shared by the scenarios.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import orjson
import pytest
from cachebolt import CacheService
from cachebolt._bench.loops import pairs_with
from cachebolt._bench.peers import PeerCache, peer_cache
from cachebolt._core import MemoryStore
from conftest import SLOW_OPS, Measure, loop1, over
from floor import FloorCache

TTL = 3600  # longer than a whole run at 1M keys: a key must not expire mid-module
TTL_MS = TTL * 1000
BATCH_OPS = 100_000  # keys inserted/deleted per round of set-insert and delete
Item = tuple[str, Any]


# The in-process peers, by leg name: `cachebolt bench --peers` drives the same caches.
PEERS = {
    "cachetools": "cachetools TTLCache",
    "cachetools[k]": "cachetools TTLCache",
    "theine": "theine",
    "moka-py": "moka-py",
}


class Leg:
    """One contender: a cache object and its get / set / delete / get_or_set calls."""

    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.close: Callable[[], object] = lambda: None
        self.peer: PeerCache | None = None
        obj: Any
        if name == "cachebolt":
            obj = CacheService()
            self.close = obj.close
        elif name == "floor":
            obj = FloorCache()
        elif name in PEERS:
            self.peer = peer_cache(PEERS[name], 2 * n + 2 * BATCH_OPS + 10, TTL)
            obj = self.peer.obj
        elif name.startswith(("core.", "bare PyO3")):
            obj = MemoryStore()
            self.close = obj.close
        elif name == "fakeredis":
            obj = fakeredis.FakeRedis()
            self.close = obj.close
        else:
            raise ValueError(name)
        self.obj = obj

    def set_loop(self, items: list[Item]) -> Callable[[], None]:
        """A loop storing every (key, value) with the leg's API and TTL."""
        obj, name = self.obj, self.name
        if self.peer is not None:
            return over(self.peer.set, items)
        if name.startswith("core."):
            return over(pairs_with(obj.set, TTL), [(k, orjson.dumps(v)) for k, v in items])
        if name == "fakeredis":
            redis_set, dumps = obj.set, orjson.dumps

            def loop_encode() -> None:
                for k, v in items:
                    redis_set(k, dumps(v), px=TTL_MS)

            return loop_encode
        return over(pairs_with(obj.set, TTL), items)

    def get_loop(self, keys: list[str]) -> Callable[[], None]:
        """A loop reading every key with the leg's get API (decoding where the leg encodes)."""
        obj, name = self.obj, self.name
        if name == "cachetools[k]":

            def loop_subscript() -> None:
                for k in keys:
                    try:  # noqa: SIM105 - contextlib.suppress would be timed too
                        obj[k]
                    except KeyError:
                        pass

            return loop_subscript
        if name in ("core.get+orjson.loads", "fakeredis"):
            raw_get, loads = obj.get, orjson.loads

            def loop_decode() -> None:
                for k in keys:
                    b = raw_get(k)
                    if b is not None:
                        loads(b)

            return loop_decode
        if name == "bare PyO3 call":
            return loop1(obj.exists, keys)
        if self.peer is not None:
            return over(self.peer.get, keys)
        return loop1(obj.get, keys)

    def delete_loop(self, keys: list[str]) -> Callable[[], None]:
        if self.peer is not None:
            return over(self.peer.delete, keys)
        return loop1(self.obj.delete, keys)


SLOW = {"fakeredis"}


class Pool:
    """The populated legs of one module and size, built on first use, closed at the end."""

    def __init__(self, items: list[Item], int_items: list[Item]) -> None:
        self.items, self.int_items = items, int_items
        self.legs: dict[tuple[str, str], Leg] = {}

    def get(self, name: str, kind: str = "dict") -> Leg:
        if (name, kind) not in self.legs:
            data = self.items if kind == "dict" else self.int_items
            if name in SLOW:
                data = data[:SLOW_OPS]
            leg = Leg(name, len(data))
            if name != "bare PyO3 call":
                leg.set_loop(data)()
            self.legs[(name, kind)] = leg
        return self.legs[(name, kind)]

    def close(self) -> None:
        for leg in self.legs.values():
            leg.close()
        self.legs.clear()


@pytest.fixture(scope="module")
def pool(items: list[Item], keys: list[str]) -> Iterator[Pool]:
    shared = Pool(items, [(k, i % 1000) for i, k in enumerate(keys)])
    yield shared
    shared.close()


def _work(name: str, data: list[Any]) -> list[Any]:
    return data[:SLOW_OPS] if name in SLOW else data


def _note(name: str, n: int) -> str:
    return f"keyspace and loop: first {min(n, SLOW_OPS):,} keys" if name in SLOW else ""


GET_LEGS = [
    "cachebolt",
    "floor",
    "cachetools",
    "cachetools[k]",
    "theine",
    "moka-py",
    "core.get",
    "core.get+orjson.loads",
    "fakeredis",
    "bare PyO3 call",
]
SET_LEGS = ["cachebolt", "floor", "cachetools", "theine", "moka-py", "core.set", "fakeredis"]
INT_GET_LEGS = ["cachebolt", "floor", "cachetools", "theine", "moka-py", "core.get"]
INT_SET_LEGS = ["cachebolt", "floor", "cachetools", "theine", "moka-py", "core.set"]
DELETE_LEGS = ["cachebolt", "floor", "cachetools", "theine", "moka-py", "core.delete", "fakeredis"]


@pytest.mark.benchmark(group="get-hit")
@pytest.mark.parametrize("leg", GET_LEGS)
def test_get_hit(leg: str, pool: Pool, measure: Measure, keys: list[str], n: int) -> None:
    work = _work(leg, keys)
    measure(pool.get(leg).get_loop(work), len(work), note=_note(leg, n))


@pytest.mark.benchmark(group="get-miss")
@pytest.mark.parametrize("leg", GET_LEGS)
def test_get_miss(leg: str, pool: Pool, measure: Measure, missing_keys: list[str], n: int) -> None:
    work = _work(leg, missing_keys)
    measure(pool.get(leg).get_loop(work), len(work), note=_note(leg, n))


@pytest.mark.benchmark(group="set")
@pytest.mark.parametrize("leg", SET_LEGS)
def test_set_overwrite(leg: str, pool: Pool, measure: Measure, items: list[Item], n: int) -> None:
    """Steady state: every key is already present, each set replaces the value and TTL."""
    work = _work(leg, items)
    measure(pool.get(leg).set_loop(work), len(work), note=_note(leg, n))


@pytest.mark.benchmark(group="get-hit-int")
@pytest.mark.parametrize("leg", INT_GET_LEGS)
def test_get_hit_int(leg: str, pool: Pool, measure: Measure, keys: list[str]) -> None:
    """Small int values (0..999), the counters/flags kind of cache entry."""
    measure(pool.get(leg, "int").get_loop(keys), len(keys))


@pytest.mark.benchmark(group="set-int")
@pytest.mark.parametrize("leg", INT_SET_LEGS)
def test_set_int(leg: str, pool: Pool, measure: Measure) -> None:
    measure(pool.get(leg, "int").set_loop(pool.int_items), len(pool.int_items))


def _batch(items: list[Item], prefix: str) -> list[Item]:
    return [(f"{prefix}{k}", v) for k, v in items[:BATCH_OPS]]


@pytest.mark.benchmark(group="set-insert")
@pytest.mark.parametrize("leg", SET_LEGS)
def test_set_insert(leg: str, pool: Pool, measure: Measure, items: list[Item], n: int) -> None:
    """Every set inserts a new key into the populated store; removed untimed between rounds."""
    contender = pool.get(leg)
    fresh = _work(leg, _batch(items, "ins:"))
    insert, remove = contender.set_loop(fresh), contender.delete_loop([k for k, _ in fresh])

    def setup() -> None:
        remove()

    measure(insert, len(fresh), setup=setup, note=_note(leg, n))
    remove()


@pytest.mark.benchmark(group="delete")
@pytest.mark.parametrize("leg", DELETE_LEGS)
def test_delete(leg: str, pool: Pool, measure: Measure, items: list[Item], n: int) -> None:
    """Delete of present keys: a batch of extra keys is stored (untimed) before each round."""
    contender = pool.get(leg.replace("core.delete", "core.set"))
    doomed = _work(leg, _batch(items, "del:"))
    fill = contender.set_loop(doomed)
    measure(
        contender.delete_loop([k for k, _ in doomed]),
        len(doomed),
        setup=fill,
        note=_note(leg, n),
    )


@pytest.mark.benchmark(group="get_or_set-hit")
@pytest.mark.parametrize("leg", ["cachebolt", "floor"])
def test_get_or_set_hit(leg: str, pool: Pool, measure: Measure, keys: list[str]) -> None:
    obj = pool.get(leg).obj
    get_or_set = obj.get_or_set

    def compute() -> object:
        raise AssertionError("a hit never computes")

    def loop() -> None:
        for k in keys:
            get_or_set(k, TTL, compute)

    measure(loop, len(keys))
