"""check_rate_limit: cachebolt (exact sliding log) vs limits' in-memory strategies.

limits (`MemoryStorage`) `FixedWindow`, `MovingWindow` and `SlidingWindowCounter` `hit()`; the
fastest of them is the anchor (goal: cachebolt >= 10x faster). Every leg hits each of the 100k
ids once per round, 1-hour window:
- `rate-limit-under`: limit 1,000,000, every hit allowed and recorded.
- `rate-limit-at-limit`: limit 5, each id pre-filled with 5 hits (untimed), every hit denied.
`core` is the bare `MemoryStore.rate_limit` call (sliding log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import limits
import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import Measure
from limits.storage import MemoryStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

WINDOW = 3600
LEGS = ["cachebolt", "core", "limits-fixed", "limits-moving", "limits-sliding-counter"]
STRATEGIES: dict[str, Any] = {
    "limits-fixed": FixedWindowRateLimiter,
    "limits-moving": MovingWindowRateLimiter,
    "limits-sliding-counter": SlidingWindowCounterRateLimiter,
}


def _loop(name: str, limit: int, keys: list[str], obj: Any) -> Callable[[], None]:
    """The timed loop, calling the leg's own API directly (no lambda layer in the loop)."""
    if name == "cachebolt":
        check = obj.check_rate_limit

        def loop_service() -> None:
            for k in keys:
                check(k, limit, WINDOW)

        return loop_service
    if name == "core":
        rate_limit = obj.rate_limit

        def loop_core() -> None:
            for k in keys:
                rate_limit(k, limit, WINDOW)

        return loop_core
    hit = obj.hit
    item = limits.RateLimitItemPerHour(limit)

    def loop_limits() -> None:
        for k in keys:
            hit(item, k)

    return loop_limits


class Contender:
    """A leg's rate limiter, built fresh per test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.close: Callable[[], object] = lambda: None
        if name == "cachebolt":
            self.obj: Any = CacheService()
            self.close = self.obj.close
        elif name == "core":
            self.obj = MemoryStore()
            self.close = self.obj.close
        else:
            self.obj = STRATEGIES[name](MemoryStorage())

    def loop(self, limit: int, keys: list[str]) -> Callable[[], None]:
        return _loop(self.name, limit, keys, self.obj)

    def hit_once(self, key: str, limit: int) -> bool:
        if self.name == "cachebolt":
            return bool(self.obj.check_rate_limit(key, limit, WINDOW))
        if self.name == "core":
            return bool(self.obj.rate_limit(key, limit, WINDOW)[0])
        return bool(self.obj.hit(limits.RateLimitItemPerHour(limit), key))


@pytest.fixture
def contender(request: pytest.FixtureRequest) -> Iterator[Contender]:
    c = Contender(request.param)
    yield c
    c.close()


@pytest.mark.benchmark(group="rate-limit-under")
@pytest.mark.parametrize("contender", LEGS, indirect=True)
def test_rate_limit_under(contender: Contender, measure: Measure, keys: list[str]) -> None:
    limit = 1_000_000
    assert contender.hit_once(keys[0], limit)
    measure(contender.loop(limit, keys), len(keys), reference=contender.name == "cachebolt")


@pytest.mark.benchmark(group="rate-limit-at-limit")
@pytest.mark.parametrize("contender", LEGS, indirect=True)
def test_rate_limit_at_limit(contender: Contender, measure: Measure, keys: list[str]) -> None:
    limit = 5
    fill = contender.loop(limit, keys)
    for _ in range(limit):
        fill()
    assert not contender.hit_once(keys[0], limit)
    measure(contender.loop(limit, keys), len(keys), reference=contender.name == "cachebolt")
