"""In-process pub/sub: subscriptions, the channel registry and the blocking service's dispatcher.

One encode per publish, one decoded copy per callback; delivery order and failing callbacks are
described in docs/semantics.md ("Pub/sub").
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from ._codec import first_use
from ._constants import DISPATCHER_STOP_TIMEOUT_SECONDS
from ._redact import get_logger

__all__ = ["STOP", "Dispatcher", "LocalBroker", "Subscription", "report_failure"]

_logger = get_logger()
_loads = first_use(globals(), "_loads", "loads")
# Queued after the last message: the delivery loop ends there.
STOP: Final = object()

MessageCallback = Callable[[Any], object]


class Subscription:
    """A callback registered on a channel; `unsubscribe()` (or leaving a `with` block) ends it.

    Attributes:
        channel: the channel subscribed to.
        callback: the function called with each JSON-decoded message.
    """

    __slots__ = ("_active", "_on_unsubscribe", "callback", "channel")

    def __init__(
        self,
        channel: str,
        callback: MessageCallback,
        on_unsubscribe: Callable[[Subscription], None],
    ) -> None:
        self.channel = channel
        self.callback = callback
        self._on_unsubscribe = on_unsubscribe
        self._active = True

    @property
    def active(self) -> bool:
        """True until `unsubscribe()`."""
        return self._active

    def unsubscribe(self) -> None:
        """Stop receiving messages (idempotent). A callback already running finishes."""
        if self._active:
            self._active = False
            self._on_unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self._active else "closed"
        return f"<Subscription {self.channel!r} {self.callback!r} {state}>"


class LocalBroker:
    """Thread-safe registry of the subscriptions of each channel."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, list[Subscription]] = {}

    def add(self, subscription: Subscription) -> None:
        """Register a subscription on its channel."""
        with self._lock:
            self._channels.setdefault(subscription.channel, []).append(subscription)

    def remove(self, subscription: Subscription) -> None:
        """Unregister a subscription (no-op when it is not registered)."""
        with self._lock:
            subscribers = self._channels.get(subscription.channel, [])
            if subscription in subscribers:
                subscribers.remove(subscription)
            if not subscribers:
                self._channels.pop(subscription.channel, None)

    def receivers(self, channel: str) -> tuple[Subscription, ...]:
        """The subscriptions of `channel` now, in subscription order."""
        with self._lock:
            return tuple(self._channels.get(channel, ()))

    def all(self) -> list[Subscription]:
        """Every registered subscription."""
        with self._lock:
            return [s for subscribers in self._channels.values() for s in subscribers]


def report_failure(subscription: Subscription) -> None:
    """Log the exception a callback raised, with its traceback (delivery goes on)."""
    _logger.exception(
        "pub/sub callback %r failed on channel %r", subscription.callback, subscription.channel
    )


class Dispatcher:
    """Runs callbacks on one daemon thread, started on the first subscription, in publish order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def register(self, subscription: Subscription) -> None:
        """Prepare delivery to a new subscription (starts the thread when needed).

        Raises:
            TypeError: the callback is an `async def` function, which this dispatcher cannot run.
        """
        import inspect  # loaded when the first subscription is made, not with the package

        if inspect.iscoroutinefunction(subscription.callback):
            raise TypeError(
                "CacheService runs pub/sub callbacks on a thread and cannot await "
                f"{subscription.callback!r}; use a plain function or AsyncCacheService"
            )
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name="cachebolt-pubsub", daemon=True
                )
                self._thread.start()

    def unregister(self, subscription: Subscription) -> None:
        """Nothing to release: queued messages of an inactive subscription are skipped."""

    def submit(self, subscription: Subscription, data: bytes) -> None:
        """Queue one encoded message for one subscription."""
        self._queue.put((subscription, data))

    def close(self) -> None:
        """Deliver what is queued, then stop the thread (idempotent; subscribing restarts it)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(STOP)
            self._queue = queue.SimpleQueue()
        if thread is not threading.current_thread():
            thread.join(DISPATCHER_STOP_TIMEOUT_SECONDS)
            if thread.is_alive():
                _logger.warning("the pub/sub dispatcher did not stop: a callback is still running")

    @staticmethod
    def _run(messages: queue.SimpleQueue[Any]) -> None:
        while (item := messages.get()) is not STOP:
            subscription, data = item
            if not subscription.active:
                continue
            try:
                subscription.callback(_loads(data))
            except Exception:
                report_failure(subscription)
