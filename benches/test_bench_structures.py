"""Counters, sets and hashes: cachebolt CacheService vs the bare MemoryStore vs fakeredis.

fakeredis (`FakeRedis()`, the only in-process peer with these commands) costs ~30 µs per call,
so it loops over the first 10% of the same key list; the per-op figure stays comparable.
Sets and hashes: 1000 of each, every key of the list is a member/field of one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import N_SLOW, ROUNDS, SLOW_ROUNDS, Measure

N_CONTAINERS = 1000
LEGS = ["cachebolt", "core", "fakeredis"]
Pair = tuple[str, str]


@pytest.fixture
def client(request: pytest.FixtureRequest) -> Iterator[Any]:
    name = request.param
    if name == "cachebolt":
        service = CacheService()
        yield service
        service.close()
    elif name == "core":
        store = MemoryStore()
        yield store
        store.close()
    else:
        yield fakeredis.FakeRedis()


@pytest.fixture(scope="module")
def set_pairs(keys: list[str]) -> list[Pair]:
    """(set key, member): every key is a member of one of 1000 sets."""
    return [(f"set:{i % N_CONTAINERS}", k) for i, k in enumerate(keys)]


@pytest.fixture(scope="module")
def hash_pairs(keys: list[str]) -> list[Pair]:
    """(hash key, field): every key is a field of one of 1000 hashes."""
    return [(f"hash:{i % N_CONTAINERS}", k) for i, k in enumerate(keys)]


def _leg(name: str, pairs: list[Any]) -> tuple[list[Any], int, bool]:
    """The slice of the workload a leg runs, its rounds, and whether it is the reference."""
    if name == "fakeredis":
        return pairs[:N_SLOW], SLOW_ROUNDS, False
    return pairs, ROUNDS, name == "cachebolt"


def _pair_loop(fn: Callable[[str, str], object], pairs: list[Pair]) -> Callable[[], None]:
    def loop() -> None:
        for a, b in pairs:
            fn(a, b)

    return loop


@pytest.mark.benchmark(group="incr")
@pytest.mark.parametrize("client", LEGS, indirect=True)
def test_incr(
    client: Any, measure: Measure, keys: list[str], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["client"]
    work, rounds, ref = _leg(name, keys)
    if name == "core":
        incrby = client.incrby

        def loop() -> None:
            for k in work:
                incrby(k, 1)

    else:
        incr = client.incr

        def loop() -> None:
            for k in work:
                incr(k)

    measure(loop, len(work), rounds=rounds, reference=ref)


@pytest.mark.benchmark(group="sadd")
@pytest.mark.parametrize("client", LEGS, indirect=True)
def test_sadd(
    client: Any, measure: Measure, set_pairs: list[Pair], request: pytest.FixtureRequest
) -> None:
    """After the warm-up round every member is present: steady-state SADD (returns 0)."""
    name = request.node.callspec.params["client"]
    work, rounds, ref = _leg(name, set_pairs)
    measure(_pair_loop(client.sadd, work), len(work), rounds=rounds, reference=ref)


@pytest.mark.benchmark(group="sismember")
@pytest.mark.parametrize("client", LEGS, indirect=True)
def test_sismember(
    client: Any, measure: Measure, set_pairs: list[Pair], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["client"]
    work, rounds, ref = _leg(name, set_pairs)
    _pair_loop(client.sadd, set_pairs if name != "fakeredis" else work)()
    assert client.sismember(*work[0])
    measure(_pair_loop(client.sismember, work), len(work), rounds=rounds, reference=ref)


@pytest.mark.benchmark(group="hset")
@pytest.mark.parametrize("client", LEGS, indirect=True)
def test_hset(
    client: Any,
    measure: Measure,
    hash_pairs: list[Pair],
    request: pytest.FixtureRequest,
) -> None:
    """Overwrite of a ~200-byte text field after the warm-up round."""
    name = request.node.callspec.params["client"]
    work, rounds, ref = _leg(name, hash_pairs)
    text = "x" * 200
    hset = client.hset

    def loop() -> None:
        for h, f in work:
            hset(h, f, text)

    measure(loop, len(work), rounds=rounds, reference=ref)


@pytest.mark.benchmark(group="hget")
@pytest.mark.parametrize("client", LEGS, indirect=True)
def test_hget(
    client: Any, measure: Measure, hash_pairs: list[Pair], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["client"]
    work, rounds, ref = _leg(name, hash_pairs)
    text = "x" * 200
    hset = client.hset
    for h, f in hash_pairs if name != "fakeredis" else work:
        hset(h, f, text)
    assert client.hget(*work[0]) in (text, text.encode())
    measure(_pair_loop(client.hget, work), len(work), rounds=rounds, reference=ref)
