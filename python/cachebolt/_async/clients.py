"""`AsyncClientSource`: which redis-py client a Redis backend command goes through.

It holds the shared client (built by `cachebolt._redis_clients.shared_client`) and the Lua
scripts registered with it; `shared` is what `backend.client` / `get_client()` hands out, and
`get()` is the client of the calling task or thread (`AsyncCallerClients`). The redis-py
specifics of each flavour live in `cachebolt._redis_clients`.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import redis.asyncio
import redis.asyncio.cluster

from .._redis_clients import (
    AsyncCallerClients,
    AsyncScript,
    Generation,
    async_run_command,
    sentinel_clients,
    shared_client,
)
from .._redis_errors import RedisErrorMapper
from ..config import CacheConfig

__all__ = ["AsyncClientSource"]


class AsyncClientSource:
    """The Redis backend's clients: the shared one, and the one of each caller.

    Args:
        config: the backend's settings.
        errors: maps redis-py errors (building a cluster client, or a caller's own, does I/O).
    """

    def __init__(self, config: CacheConfig, errors: RedisErrorMapper) -> None:
        self._config = config
        self._errors = errors
        self._shared: Any = None
        self._retired: Any = None  # cluster mode: the client closed last, closed again
        self.scripts: dict[str, Any] = {}
        self._generation = Generation()
        self._callers = AsyncCallerClients(config)
        self._after_fork()
        _SOURCES.add(self)
        if not config.cluster:
            # A standalone client connects lazily; the cluster client is made on first use,
            # since the blocking RedisCluster discovers its nodes in its constructor.
            self._build()

    def _after_fork(self) -> None:
        # Also run in a forked child, which must not talk on its parent's sockets: the callers'
        # clients are dropped unclosed (the pool resets itself in the child at its next
        # checkout), and a lock a thread of the parent held is replaced.
        self._lock = threading.Lock()
        # Held while a shared client is built: callers that find none (after `aclose()`) build
        # one, not one each (all but the last would stay open).
        self._build_lock = threading.Lock()
        self._callers.reset()

    def _build(self) -> Any:
        with self._build_lock:
            if self._shared is not None:
                return self._shared
            generation = Generation()
            with self._errors:
                client, scripts = shared_client(
                    self._config,
                    redis.asyncio.Redis,
                    redis.asyncio.cluster.RedisCluster,
                    AsyncScript,
                    generation,
                )
            with self._lock:
                self._shared, self.scripts, self._generation = client, scripts, generation
            return client

    @property
    def shared(self) -> Any:
        """The shared client (made now if closed, or in cluster mode on first use)."""
        return self._shared or self._build()

    def get(self) -> Any:
        """The client for a command of the caller, made (and connected) on its first command.

        Raises:
            BackendUnavailable: a new caller's connection could not be made.
        """
        return self._callers.get(self._shared) or self._first_client()

    def _first_client(self) -> Any:
        while True:
            shared = self._shared or self._build()
            with self._errors:
                client = self._callers.open(shared)
            with self._lock:
                if self._shared is shared:
                    self._callers.keep(client, shared)
                    return client
            # Closed meanwhile: this connection is closed too, and the caller takes a new one.
            self._callers.drop(client, shared)

    def execute(self, client: Any, *command: Any) -> Any:
        """`command` on `client` (from `get()`), its raw reply (no redis-py response callback).

        Returns:
            The reply; with redis.asyncio, an awaitable of it (no coroutine frame of its own).
        """
        return async_run_command(client, *command)

    async def aclose(self) -> None:
        """Close every connection of the clients; the next `get()` starts afresh.

        A command in flight on one of them fails (`BackendUnavailable`), and none of them
        connects again (`Generation`).
        """
        with self._lock:
            shared, self._shared = self._shared, None
            self._generation.closed = True
            own = self._callers.reset()
            # A cluster client re-discovers its nodes after a failed command, with new
            # connections: the one closed last time may have done so for a command in flight.
            retired, self._retired = self._retired, shared if self._config.cluster else None
        for client in own:
            await client.aclose()  # gives its connection back to the pool
        for closing in (retired, shared):
            if closing is not None:
                await closing.aclose()  # the pool's owner: disconnects every connection
                for sentinel in sentinel_clients(closing):
                    await sentinel.aclose()


_SOURCES: weakref.WeakSet[AsyncClientSource] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for source in list(_SOURCES):
        source._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
