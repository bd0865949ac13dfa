"""Fixtures: one test body runs against `CacheService` and `AsyncCacheService` on each backend.

`cache` is parametrized sync/async. The async variant is `SyncProxy`: every coroutine method of an
`AsyncCacheService` runs to completion on an event loop that lives in its own thread, so the same
blocking test code drives both services, and pub/sub callbacks on that loop can be awaited with
`threading.Event`. `backend` is parametrized too (only "memory" today; "redis" slots in later).
Time moves through the store's manual clock (`clock.advance(seconds)`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from cachebolt import AsyncCacheService, CacheService
from cachebolt._core import MemoryStore

T = TypeVar("T")


class Clock:
    """The manual clock of a test store."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def advance(self, seconds: float) -> None:
        self.store.advance_clock(round(seconds * 1000))


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking call from the loop's own thread would deadlock")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def stop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SyncProxy:
    """Blocking view of an `AsyncCacheService`: same method names, coroutines run on `runner`."""

    def __init__(self, service: AsyncCacheService, runner: LoopThread) -> None:
        self.service = service
        self.runner = runner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.service, name)
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            def call(*args: Any, **kwargs: Any) -> Any:
                return self.runner.run(attr(*args, **kwargs))

            return call
        return attr

    @contextlib.contextmanager
    def lock(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        manager = self.service.lock(*args, **kwargs)
        token = self.runner.run(manager.__aenter__())
        try:
            yield token
        except BaseException as exc:
            if not self.runner.run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.runner.run(manager.__aexit__(None, None, None))

    def _decorator(self, name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        """Decorate a plain function through the async service (which needs an async def)."""
        decorator = getattr(self.service, name)(*args, **kwargs)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            # A function this proxy already decorated (stacked decorators) is awaited directly.
            inner = getattr(fn, "proxied_coroutine", None)

            @functools.wraps(fn)
            async def as_coroutine(*a: Any, **kw: Any) -> Any:
                return await inner(*a, **kw) if inner is not None else fn(*a, **kw)

            decorated = decorator(as_coroutine)

            @functools.wraps(fn)
            def blocking(*a: Any, **kw: Any) -> Any:
                return self.runner.run(decorated(*a, **kw))

            blocking.proxied_coroutine = decorated  # type: ignore[attr-defined]
            return blocking

        return decorate

    def cached(self, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("cached", **kwargs)

    def rate_limited(self, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("rate_limited", **kwargs)

    def with_lock(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        return self._decorator("with_lock", *args, **kwargs)


@pytest.fixture(params=["memory"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test; a "redis" parameter joins with the Redis backend."""
    return str(request.param)


@pytest.fixture
def store(backend: str) -> Iterator[MemoryStore]:
    """A private store on a manual clock, with no background sweep."""
    memory_store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    yield memory_store
    memory_store.close()


@pytest.fixture
def clock(store: MemoryStore) -> Clock:
    return Clock(store)


@pytest.fixture
def sync_cache(store: MemoryStore) -> Iterator[CacheService]:
    service = CacheService(store=store)
    yield service
    service.close()


@pytest.fixture
async def async_cache(store: MemoryStore) -> AsyncIterator[AsyncCacheService]:
    service = AsyncCacheService(store=store)
    yield service
    await service.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.stop()


@pytest.fixture(params=["sync", "async"])
def cache(request: pytest.FixtureRequest, store: MemoryStore) -> Iterator[Any]:
    """`CacheService`, or `AsyncCacheService` behind `SyncProxy`: one test body for both."""
    if request.param == "sync":
        service = CacheService(store=store)
        yield service
        service.close()
        return
    runner = LoopThread()
    async_service = AsyncCacheService(store=store)
    yield SyncProxy(async_service, runner)
    runner.run(async_service.close())
    runner.stop()
