"""acquire_lock + release_lock: cachebolt vs the floor of two bare PyO3 calls.

One operation = acquire a free lock then release it with its token, over the 100k keys.
- `cachebolt`: `CacheService.acquire_lock(k, 10_000)` + `release_lock(k, token)` (reference).
- `core`: the same two calls on the bare `MemoryStore`.
- `floor: 2x exists`: `MemoryStore.exists(k)` twice - the cost of crossing into Rust twice with a
  str argument, i.e. what the lock would cost if token generation and bookkeeping were free.
- `floor: 2x len`: `len(store)` twice - two argument-less PyO3 calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cachebolt import CacheService
from cachebolt._core import MemoryStore
from conftest import Measure

TTL_MS = 10_000
LEGS = ["cachebolt", "core", "floor: 2x exists", "floor: 2x len"]


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Any]:
    obj: Any = CacheService() if request.param == "cachebolt" else MemoryStore()
    yield obj
    obj.close()


@pytest.mark.benchmark(group="lock-acquire-release")
@pytest.mark.parametrize("target", LEGS, indirect=True)
def test_lock(
    target: Any, measure: Measure, keys: list[str], request: pytest.FixtureRequest
) -> None:
    name = request.node.callspec.params["target"]
    loop: Callable[[], None]
    if name in ("cachebolt", "core"):
        acquire, release = target.acquire_lock, target.release_lock
        token = acquire(keys[0], TTL_MS)
        assert token is not None
        assert release(keys[0], token)

        def loop() -> None:
            for k in keys:
                release(k, acquire(k, TTL_MS))

    elif name == "floor: 2x exists":
        exists = target.exists

        def loop() -> None:
            for k in keys:
                exists(k)
                exists(k)

    else:
        size = target.__len__

        def loop() -> None:
            for _ in keys:
                size()
                size()

    measure(loop, len(keys), reference=name == "cachebolt")
