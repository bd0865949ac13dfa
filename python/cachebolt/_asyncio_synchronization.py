"""The asyncio twins of the primitives in `_synchronization` (see there for the pairing).

Only the modules of `_async/` import it, so a blocking-only program never loads asyncio.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

__all__ = [
    "AsyncFlag",
    "AsyncMutex",
    "AsyncSingleFlight",
    "AsyncWorker",
    "async_connect_at_init",
    "async_invoke",
    "async_sleep",
    "async_undo_if_abandoned",
]

_T = TypeVar("_T")

async_sleep = asyncio.sleep
# A mutual-exclusion lock: `async with mutex:`.
AsyncMutex = asyncio.Lock


def async_connect_at_init(connect: Callable[[], Awaitable[object]]) -> None:
    """The asyncio service cannot await in `__init__`: `async with` or its first call connects."""


async def async_invoke(fn: Callable[[], object]) -> object:
    """Call `fn` and await its result when it is awaitable (sync and async functions both work)."""
    result = fn()
    if inspect.isawaitable(result):
        return await result
    return result


async def async_undo_if_abandoned(
    action: Callable[[], Awaitable[_T]], undo: Callable[[], Awaitable[object]], bound: float
) -> _T:
    """`await action()`; when the caller is cancelled first, let `action` end, then `undo()` it.

    `action` runs in its own task, so a cancellation cannot cut it between a command and its reply.
    A cancelled caller waits up to `bound` for `action`, then (unless it returned a falsy result)
    for `undo()`, and the cancellation goes on.

    Args:
        action: makes the awaitable that does the work, e.g. takes a lock.
        undo: makes the awaitable that takes it back (it handles its own errors).
        bound: seconds a cancelled caller waits for `action` and `undo` together.
    """
    task = asyncio.ensure_future(action())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        cleanup = asyncio.ensure_future(_undo_after(task, undo))
        cleanup.add_done_callback(_retrieve)
        await asyncio.wait([cleanup], timeout=bound)
        raise


async def _undo_after(task: asyncio.Future[Any], undo: Callable[[], Awaitable[object]]) -> None:
    try:
        done = await task
    except Exception:
        done = True  # failed after the command may have been sent: undo to be sure
    if done:
        await undo()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" log


class AsyncSingleFlight:
    """Runs one call per key at a time across tasks; concurrent callers share its outcome.

    The call runs in its own task, so cancelling one caller cancels neither the computation nor
    the other callers. `landed`, `shared`, `failed` and `computed` count as in `SingleFlight`.
    """

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[Any]] = {}
        self.landed = 0
        self.shared = 0
        self.failed = 0
        self.computed = 0

    async def run(self, key: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Await `fn()` unless a call for `key` is in flight; then share its result (or error)."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
            return cast(_T, await asyncio.shield(task))
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise  # this caller left: it took nothing
        except BaseException:
            self.failed += 1
            raise
        self.shared += 1
        return cast(_T, result)

    def note_computed(self) -> None:
        """Count a call that made its result (rather than finding it made)."""
        self.computed += 1

    def _finished(self, key: str, task: asyncio.Task[Any]) -> None:
        self.landed += 1
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" log if all left


class AsyncFlag:
    """A flag tasks wait on, with a timeout (`asyncio.Event`; set it from its loop only)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Raise the flag and wake every waiter."""
        self._event.set()

    def is_set(self) -> bool:
        """True once `set()` was called."""
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the flag; True when it is set."""
        if self._event.is_set():
            return True
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


class AsyncWorker:
    """A background loop as a task of the running event loop, started at once."""

    __slots__ = ("_task",)

    def __init__(self, target: Callable[[], Awaitable[None]], name: str) -> None:
        async def run() -> None:
            await target()

        self._task = asyncio.get_running_loop().create_task(run(), name=name)

    def running(self) -> bool:
        """True until the loop returns."""
        return not self._task.done()

    async def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the loop to return, then cancel it.

        A task of another (or a closed) event loop cannot be awaited here: it is cancelled.

        Returns:
            True when it ended by itself.
        """
        task = self._task
        if task is asyncio.current_task():
            return True
        loop = task.get_loop()
        if loop is not asyncio.get_running_loop():
            if not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
            return task.done()
        done, _ = await asyncio.wait([task], timeout=timeout)
        if done:
            if not task.cancelled():
                task.exception()  # retrieved: the loop logs its own errors
            return True
        task.cancel()
        await asyncio.wait([task])
        return False
