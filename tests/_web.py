"""A FastAPI app per test on the service under test (tests of cachebolt.fastapi and the example)."""

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from cachebolt import AsyncCacheService, CacheConfig, CacheService
from cachebolt._core import MemoryStore
from fastapi import FastAPI
from fastapi.testclient import TestClient

PEER = ("198.51.100.7", 40000)
# Every route of `admin_router`, each with a pattern where it takes one.
ROUTES = [
    ("GET", "/cache/stats"),
    ("GET", "/cache/keys?pattern=*"),
    ("DELETE", "/cache/keys?pattern=*"),
    ("POST", "/cache/clear-locks"),
    ("GET", "/cache/health"),
]


class Harness:
    """An app with `app.state.cachebolt` set to the service under test, and a virtual clock.

    `call(name, *args)` runs a service method from the test (awaited on the client's loop for the
    asyncio service). `advance(seconds)` moves the clock of rate limits: the store's manual
    clock on memory, the Redis backend's test clock (the scripts' `now`) on Redis.
    """

    def __init__(self, service: CacheService | AsyncCacheService, store: Any) -> None:
        self.service = service
        self.store = store
        self.client: TestClient | None = None
        self._virtual_ms = 0
        if not isinstance(store, MemoryStore):
            origin = int(time.time() * 1000)
            primary = service._fallback._primary  # type: ignore[union-attr]
            primary._test_clock = lambda: origin + self._virtual_ms

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            yield
            if isinstance(service, AsyncCacheService):
                await service.close()  # on the loop that used it

        self.app = FastAPI(lifespan=lifespan)
        self.app.state.cachebolt = service

    def advance(self, seconds: float) -> None:
        ms = round(seconds * 1000)
        if isinstance(self.store, MemoryStore):
            self.store.advance_clock(ms)
        else:
            self._virtual_ms += ms

    def start(self, client: tuple[str, int] = PEER) -> TestClient:
        self.client = TestClient(self.app, client=client, raise_server_exceptions=False)
        self.client.__enter__()
        return self.client

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.service, name)
        if isinstance(self.service, AsyncCacheService):
            assert self.client is not None, "start() the client first: it owns the loop"
            portal = self.client.portal
            assert portal is not None
            return portal.call(lambda: method(*args, **kwargs))
        return method(*args, **kwargs)

    def keys(self, pattern: str) -> list[str]:
        """Every key matching `pattern` (a whole SCAN walk), sorted."""
        found: list[str] = []
        cursor = 0
        while True:
            cursor, keys = self.call("scan", cursor, pattern, 1000)
            found.extend(keys)
            if cursor == 0:
                return sorted(found)

    def stop(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
        if isinstance(self.service, CacheService):
            self.service.close()


@contextmanager
def open_harness(flavour: str, store: Any, config: CacheConfig | None) -> Iterator[Harness]:
    """A `Harness` on a new `CacheService` ("sync") or `AsyncCacheService` ("async"): `config`
    for Redis, else the test's memory `store`."""
    kwargs: dict[str, Any] = {"config": config} if config else {"store": store}
    service: CacheService | AsyncCacheService = (
        CacheService(**kwargs) if flavour == "sync" else AsyncCacheService(**kwargs)
    )
    made = Harness(service, store)
    try:
        yield made
    finally:
        made.stop()
