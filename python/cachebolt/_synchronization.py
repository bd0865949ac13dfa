"""Concurrency primitives of the blocking service (threads), and `Backoff`, shared by both.

The asyncio twins live in `_asyncio_synchronization` under names that scripts/unasync.py maps
onto these, so a blocking-only program never imports asyncio.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from ._constants import LOCK_BACKOFF_INITIAL_SECONDS, LOCK_BACKOFF_MAX_SECONDS
from ._redact import get_logger
from .exceptions import BackendUnavailable, LockNotAcquired

__all__ = [
    "Backoff",
    "Flag",
    "Mutex",
    "SingleFlight",
    "Worker",
    "connect_at_init",
    "invoke",
    "next_lock_wait",
    "sleep",
    "undo_if_abandoned",
]

_T = TypeVar("_T")
_logger = get_logger()

sleep = time.sleep
# A mutual-exclusion lock: `with mutex:`.
Mutex = threading.Lock


def connect_at_init(connect: Callable[[], object]) -> None:
    """The blocking service connects in `__init__` (bounded by the connect timeout)."""
    connect()


def invoke(fn: Callable[[], object]) -> object:
    """Call `fn`; an awaitable result is refused (the blocking service cannot await it).

    Raises:
        TypeError: `fn` returned an awaitable (an `async def` function).
    """
    result = fn()
    if isinstance(result, Awaitable):
        if isinstance(result, Coroutine):
            result.close()  # never awaited on purpose: no "never awaited" warning
        raise TypeError(
            f"{fn!r} returned an awaitable; CacheService needs a plain function "
            "(use AsyncCacheService for async functions)"
        )
    return result


def undo_if_abandoned(action: Callable[[], _T], undo: Callable[[], object], bound: float) -> _T:
    """`action()`; when an interrupt (KeyboardInterrupt, SystemExit) cuts it, `undo()` it.

    The command may have been applied before the interrupt, so `undo()` runs (bounded by the
    socket timeout), then the interrupt goes on; an `Exception` from `action` is raised as it is.

    Args:
        action: does the work, e.g. takes a lock.
        undo: takes it back (it handles its own errors).
        bound: the asyncio twin's wait; here the socket timeout bounds `undo`.
    """
    try:
        return action()
    except Exception:
        raise
    except BaseException:
        undo()
        raise


class Backoff:
    """Sleep durations for a lock wait: 5 ms doubling to 100 ms, jittered, cut at the deadline."""

    __slots__ = ("_deadline", "_delay")

    def __init__(self, wait_seconds: float) -> None:
        self._deadline = time.monotonic() + wait_seconds
        self._delay = LOCK_BACKOFF_INITIAL_SECONDS

    def next_delay(self) -> float | None:
        """The next sleep in seconds, or None when the deadline has passed."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return None
        # Jitter (50..100 % of the step) keeps waiters that collided from colliding again.
        delay = self._delay * (0.5 + random.random() / 2)
        self._delay = min(self._delay * 2, LOCK_BACKOFF_MAX_SECONDS)
        return min(delay, remaining)


class _Flight:
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiters = 0


class SingleFlight:
    """Runs one call per key at a time across threads; concurrent callers share its outcome.

    `landed` counts the flights that have ended (any key): a caller that read it before its
    lookup knows, when it is unchanged, that no flight stored anything since. Of the callers
    that waited for another one's call, `shared` counts those that took its result and
    `failed` those that took its error; `computed` counts the calls that `note_computed`
    reported. Each counter only grows.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self.landed = 0
        self.shared = 0
        self.failed = 0
        self.computed = 0

    def run(self, key: str, fn: Callable[[], _T]) -> _T:
        """Call `fn` unless a call for `key` is in flight; then wait for it and share its result.

        Every caller of one flight gets the same result, or the same exception raised again.
        """
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(_T, flight.result)
        try:
            flight.result = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            # Unregister before waking the waiters: a later miss starts a fresh flight.
            with self._lock:
                del self._flights[key]
                self.landed += 1
                # Final: a caller joins only while the flight is registered.
                if flight.error is None:
                    self.shared += flight.waiters
                else:
                    self.failed += flight.waiters
            flight.done.set()
        return cast(_T, flight.result)

    def note_computed(self) -> None:
        """Count a call that made its result (rather than finding it made)."""
        with self._lock:
            self.computed += 1


class Flag:
    """A flag threads wait on, with a timeout (`threading.Event`)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Raise the flag and wake every waiter."""
        self._event.set()

    def is_set(self) -> bool:
        """True once `set()` was called."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the flag; True when it is set."""
        return self._event.wait(timeout)


class Worker:
    """A background loop on a daemon thread, started at once."""

    __slots__ = ("_thread",)

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def running(self) -> bool:
        """True until the loop returns."""
        return self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the loop to return (told to stop beforehand).

        Returns:
            True when it has ended (also when called from the worker itself, which cannot wait).
        """
        if self._thread is threading.current_thread():
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


def next_lock_wait(
    backoff: Backoff, lock_key: str, wait_seconds: float, refused: BackendUnavailable | None
) -> float:
    """The delay before the next attempt at a held (or refused) lock, or the error ending the wait.

    Args:
        refused: the last attempt's refusal by the "fail_closed" outage policy, None when the
            lock was held by someone else.

    Raises:
        BackendUnavailable: `refused`, once `wait_seconds` has run out.
        LockNotAcquired: the lock was still held when `wait_seconds` ran out (logged).
    """
    delay = backoff.next_delay()
    if delay is not None:
        return delay
    if refused is not None:
        raise refused
    _logger.warning("failed to acquire lock: %s", lock_key)
    raise LockNotAcquired(lock_key, wait_seconds)
