"""The asyncio service's pub/sub dispatcher (its blocking twin is `_pubsub.Dispatcher`).

Callbacks run on the event loop that subscribed, one queue and one task per subscription, so
async callbacks keep publish order too. Only the modules of `_async/` import it, so a
blocking-only program never loads asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from typing import Any

import orjson

from ._constants import DISPATCHER_STOP_TIMEOUT_SECONDS
from ._pubsub import STOP, Subscription, report_failure
from ._redact import get_logger

__all__ = ["AsyncDispatcher"]

_logger = get_logger()


class _Worker:
    __slots__ = ("loop", "queue", "task")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        messages: asyncio.Queue[Any],
        task: asyncio.Task[None],
    ) -> None:
        self.loop = loop
        self.queue = messages
        self.task = task


class AsyncDispatcher:
    """Runs callbacks (plain or async) on the loop that subscribed, one task per subscription."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: dict[Subscription, _Worker] = {}

    def register(self, subscription: Subscription) -> None:
        """Start the delivery task of a new subscription on the running loop."""
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[Any] = asyncio.Queue()
        task = loop.create_task(self._run(subscription, messages), name="cachebolt-pubsub")
        with self._lock:
            self._workers[subscription] = _Worker(loop, messages, task)

    def unregister(self, subscription: Subscription) -> None:
        """Stop the delivery task of a subscription."""
        with self._lock:
            worker = self._workers.pop(subscription, None)
        if worker is not None:
            self._post(worker, STOP)

    def submit(self, subscription: Subscription, data: bytes) -> None:
        """Queue one encoded message for one subscription (thread-safe)."""
        with self._lock:
            worker = self._workers.get(subscription)
        if worker is not None:
            self._post(worker, data)

    async def aclose(self) -> None:
        """Deliver what is queued, then stop every delivery task (idempotent)."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            self._post(worker, STOP)
        loop = asyncio.get_running_loop()
        # Tasks of other loops are told to stop; only this loop's can be awaited.
        tasks = [w.task for w in workers if w.loop is loop]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DISPATCHER_STOP_TIMEOUT_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                _logger.warning("pub/sub callbacks still running at close() were cancelled")
                await asyncio.wait(pending)

    @staticmethod
    def _post(worker: _Worker, item: object) -> None:
        # A closed subscribing loop raises RuntimeError: nothing is left to deliver to.
        with contextlib.suppress(RuntimeError):
            worker.loop.call_soon_threadsafe(worker.queue.put_nowait, item)

    @staticmethod
    async def _run(subscription: Subscription, messages: asyncio.Queue[Any]) -> None:
        while (data := await messages.get()) is not STOP:
            if not subscription.active:
                continue
            try:
                result = subscription.callback(orjson.loads(data))
                if inspect.isawaitable(result):
                    await result
            except Exception:
                report_failure(subscription)
