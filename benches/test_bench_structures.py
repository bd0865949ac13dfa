"""Counters, sets and hashes: cachebolt (blocking and asyncio) vs the bare MemoryStore vs fakeredis.

Scenarios: `incr`, `sadd` (steady state: members present after the warm-up round),
`sismember`, `smembers`, `hset` (overwrite of a 200-byte text field), `hget`, `hgetall`.
Containers hold 10 members/fields each (key i is a member of container i // 10), so the cost per
call does not change with the size; `smembers`/`hgetall` run once per container.
fakeredis (the only in-process peer with these commands, ~30-60 µs per call) runs over the first
`BENCH_SLOW_OPS` keys of the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import SLOW_OPS, Measure, aloop1, aloop2, loop1, loop2, new_async_service

PER_CONTAINER = 10
TEXT = "x" * 200
LEGS = ["cachebolt", "cachebolt async", "core", "fakeredis"]
Pair = tuple[str, str]


def pairs_of(keys: list[str], prefix: str) -> list[Pair]:
    """(container, member): consecutive runs of 10 keys share a container."""
    return [(f"{prefix}:{i // PER_CONTAINER}", k) for i, k in enumerate(keys)]


class Client:
    """One leg's client, its sets and hashes filled once (untimed)."""

    def __init__(self, name: str, keys: list[str], loop: Any) -> None:
        self.name, self.loop = name, loop
        self.close: Callable[[], object] = lambda: None
        self.keys = keys[:SLOW_OPS] if name == "fakeredis" else keys
        self.set_pairs = pairs_of(self.keys, "set")
        self.hash_pairs = pairs_of(self.keys, "hash")
        self.sets = sorted({s for s, _ in self.set_pairs})
        self.hashes = sorted({h for h, _ in self.hash_pairs})
        obj: Any
        if name == "cachebolt":
            obj = CacheService()
            self.close = obj.close
        elif name == "cachebolt async":
            obj = new_async_service(loop)
            self.close = lambda: loop.run_until_complete(obj.close())
        elif name == "core":
            obj = MemoryStore()
            self.close = obj.close
        else:
            obj = fakeredis.FakeRedis()
            self.close = obj.close
        self.obj = obj
        self.pairs_loop(obj.sadd, self.set_pairs)()
        self.pairs_loop(self.hset_fn(), self.hash_pairs)()

    def pairs_loop(self, fn: Callable[..., Any], pairs: list[Pair]) -> Callable[[], None]:
        if self.name == "cachebolt async":
            return aloop2(self.loop, fn, pairs)
        return loop2(fn, pairs)

    def one_loop(self, fn: Callable[..., Any], args: list[str]) -> Callable[[], None]:
        if self.name == "cachebolt async":
            return aloop1(self.loop, fn, args)
        return loop1(fn, args)

    def hset_fn(self) -> Callable[[str, str], Any]:
        hset = self.obj.hset
        return lambda h, f: hset(h, f, TEXT)

    def note(self) -> str:
        return f"first {len(self.keys):,} keys" if self.name == "fakeredis" else ""


@pytest.fixture(scope="module")
def clients(keys: list[str], aio_loop: Any) -> Iterator[dict[str, Client]]:
    made: dict[str, Client] = {}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture
def client(request: pytest.FixtureRequest, clients: dict[str, Client], keys: list[str],
           aio_loop: Any) -> Client:  # fmt: skip
    name = request.node.callspec.params["leg"]
    if name not in clients:
        clients[name] = Client(name, keys, aio_loop)
    return clients[name]


@pytest.mark.benchmark(group="incr")
@pytest.mark.parametrize("leg", LEGS)
def test_incr(leg: str, client: Client, measure: Measure) -> None:
    counters = [f"cnt:{k}" for k in client.keys]
    fn = client.obj.incrby if leg == "core" else client.obj.incr
    loop = client.one_loop(fn, counters) if leg != "core" else loop2(fn, [(c, 1) for c in counters])
    measure(loop, len(counters), note=client.note())


# scenario -> (the client's method, or "hset" for a 200-byte text write; the data it runs on)
SCENARIOS = {
    "sadd": ("sadd", "set_pairs"),  # steady state: every member present after the warm-up
    "sismember": ("sismember", "set_pairs"),
    "smembers": ("smembers", "sets"),  # one SMEMBERS of a 10-member set per op
    "hset": ("hset", "hash_pairs"),  # overwrite of a 200-byte text field
    "hget": ("hget", "hash_pairs"),
    "hgetall": ("hgetall", "hashes"),  # one HGETALL of a 10-field hash per op
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("leg", LEGS)
def test_structure(
    leg: str, scenario: str, client: Client, measure: Measure, benchmark: Any
) -> None:
    benchmark.group = scenario
    method, attr = SCENARIOS[scenario]
    data = getattr(client, attr)
    fn = client.hset_fn() if method == "hset" else getattr(client.obj, method)
    loop = client.pairs_loop(fn, data) if attr.endswith("pairs") else client.one_loop(fn, data)
    measure(loop, len(data), note=client.note())
