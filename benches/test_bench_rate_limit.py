"""Rate limits: cachebolt (blocking, asyncio, bare store) vs the `limits` library in memory.

Every leg hits each id once per round, 1-hour window:
- `rate-limit-under`: `check_rate_limit` (exact sliding log), limit 1,000,000, every hit allowed;
  limits' `FixedWindow`, `MovingWindow` and `SlidingWindowCounter` `hit()` on `MemoryStorage` -
  goal: cachebolt >= 10x faster than the fastest of them.
- `rate-limit-at-limit`: limit 5, each id pre-filled with 5 hits (untimed): every hit denied.
- `rate-limit-fixed-window` / `rate-limit-sliding-counter`: `hit_rate_limit(...,
  algorithm=...)` (returns the full result) vs limits' strategy of the same algorithm.
`core` is the bare `MemoryStore.rate_limit` call. The limits legs (5-10 µs per hit) loop over at
most the first 100k ids (their keyspace too); the note says so at 1M.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cachebolt import CacheService
from cachebolt._bench.peers import limits_hit
from cachebolt._core import MemoryStore
from conftest import PEER_OPS, Measure, aloop1, new_async_service, over
from limits.storage import MemoryStorage

WINDOW = 3600
UNDER, AT = 1_000_000, 5
# limits' strategy of each leg (`cachebolt._bench.peers.LIMITS_STRATEGIES`).
STRATEGIES = {
    "limits-fixed": "fixed window",
    "limits-moving": "moving window",
    "limits-sliding-counter": "sliding window counter",
}
OURS = ["cachebolt", "cachebolt async", "core"]
LEGS = [*OURS, *STRATEGIES]


class Contender:
    """A leg's rate limiter for one algorithm; `loop(limit, ids)` hits every id once."""

    def __init__(self, name: str, algorithm: str, aio_loop: Any) -> None:
        self.name, self.algorithm, self.aio_loop = name, algorithm, aio_loop
        self.close: Callable[[], object] = lambda: None
        obj: Any
        if name == "cachebolt":
            obj = CacheService()
            self.close = obj.close
        elif name == "cachebolt async":
            obj = new_async_service(aio_loop)
            self.close = lambda: aio_loop.run_until_complete(obj.close())
        elif name == "core":
            obj = MemoryStore()
            self.close = obj.close
        else:
            obj = MemoryStorage()
        self.obj = obj

    def loop(self, limit: int, ids: list[str]) -> Callable[[], None]:
        """The timed loop, calling the leg's own API directly."""
        obj, algorithm = self.obj, self.algorithm
        if self.name.startswith("limits"):
            return over(limits_hit(obj, STRATEGIES[self.name], limit, WINDOW), ids)
        if self.name == "core":
            rate_limit = obj.rate_limit

            def loop_core() -> None:
                for k in ids:
                    rate_limit(k, limit, WINDOW, 1, algorithm)

            return loop_core
        if algorithm == "sliding_log":
            check = obj.check_rate_limit
            if self.name == "cachebolt async":
                return aloop1(self.aio_loop, lambda k: check(k, limit, WINDOW), ids)

            def loop_check() -> None:
                for k in ids:
                    check(k, limit, WINDOW)

            return loop_check
        hit_rl = obj.hit_rate_limit
        if self.name == "cachebolt async":
            return aloop1(
                self.aio_loop, lambda k: hit_rl(k, limit, WINDOW, algorithm=algorithm), ids
            )

        def loop_hit() -> None:
            for k in ids:
                hit_rl(k, limit, WINDOW, algorithm=algorithm)

        return loop_hit


@pytest.fixture
def contender(request: pytest.FixtureRequest, aio_loop: Any) -> Iterator[Contender]:
    algorithm = getattr(request, "param", "sliding_log")
    params = request.node.callspec.params
    name = params["peer"] if params["leg"] == "peer" else params["leg"]
    c = Contender(name, algorithm, aio_loop)
    yield c
    c.close()


def _ids(leg: str, keys: list[str]) -> tuple[list[str], str]:
    if leg.startswith("limits") and len(keys) > PEER_OPS:
        return keys[:PEER_OPS], f"first {PEER_OPS:,} ids"
    return keys, ""


@pytest.mark.benchmark(group="rate-limit-under")
@pytest.mark.parametrize("leg", LEGS)
def test_rate_limit_under(
    leg: str, contender: Contender, measure: Measure, keys: list[str]
) -> None:
    ids, note = _ids(leg, keys)
    measure(contender.loop(UNDER, ids), len(ids), note=note)


@pytest.mark.benchmark(group="rate-limit-at-limit")
@pytest.mark.parametrize("leg", LEGS)
def test_rate_limit_at_limit(
    leg: str, contender: Contender, measure: Measure, keys: list[str]
) -> None:
    ids, note = _ids(leg, keys)
    fill = contender.loop(AT, ids)
    for _ in range(AT):
        fill()
    measure(contender.loop(AT, ids), len(ids), note=note)


@pytest.mark.parametrize(
    ("contender", "peer"),
    [("fixed_window", "limits-fixed"), ("sliding_counter", "limits-sliding-counter")],
    indirect=["contender"],
    ids=["fixed-window", "sliding-counter"],
)
@pytest.mark.parametrize("leg", [*OURS, "peer"])
def test_other_algorithms(
    leg: str, peer: str, contender: Contender, measure: Measure, keys: list[str], benchmark: Any
) -> None:
    """`hit_rate_limit(..., algorithm=...)` against limits' strategy of the same algorithm."""
    benchmark.group = f"rate-limit-{contender.algorithm.replace('_', '-')}"
    ids, note = _ids(contender.name, keys)
    measure(contender.loop(UNDER, ids), len(ids), note=note, leg=contender.name)
