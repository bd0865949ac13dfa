# generated from _async by scripts/unasync.py; do not edit
"""`RedisListener`: this service's channels, received from Redis on one connection.

One listener per service, started by the first subscription (a task here, a daemon thread in the
blocking twin); it alone touches its redis-py `PubSub`. docs/semantics.md ("Pub/sub") states
the reconnection and at-most-once delivery.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from .._synchronization import Flag, Worker
from .._constants import (
    BACKGROUND_STOP_TIMEOUT_SECONDS,
    PUBSUB_POLL_SECONDS,
    PUBSUB_RECONNECT_INITIAL_SECONDS,
    PUBSUB_RECONNECT_MAX_SECONDS,
)
from .._redact import get_logger
from .._redis_clients import open_pubsub
from .._redis_errors import translate
from ..exceptions import BackendUnavailable

__all__ = ["RedisListener"]

_logger = get_logger()
_DRAIN_PING = "cachebolt-drain"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisListener:
    """Receives the messages of the subscribed channels from Redis.

    Args:
        client: returns the redis-py client (`client().pubsub()` gives the connection).
        prefix: the key prefix, prepended to every channel name on Redis.
        deliver: called with (channel without the prefix, message bytes) for each message.
        confirm_timeout: how long `add()` waits for Redis to confirm a SUBSCRIBE, in seconds.
        resubscribed: called with a channel (without the prefix) when Redis confirms it again
            after the connection was lost.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        prefix: str,
        deliver: Callable[[str, bytes], object],
        *,
        confirm_timeout: float,
        resubscribed: Callable[[str], object] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._deliver = deliver
        self._confirm_timeout = confirm_timeout
        self._resubscribed = resubscribed
        self._missed: set[str] = set()  # channels that may have missed messages (lost connection)
        self._lock = threading.Lock()
        self._wanted: dict[str, Flag] = {}  # channel -> set once Redis confirmed it
        self._live: set[str] = set()  # channels Redis confirmed and has not unsubscribed
        self._stop = Flag()
        self._worker: Worker | None = None
        self._closed = False
        # Cluster mode: the node the connection is on, once the first SUBSCRIBE chose it.
        self._node: Any = None

    @property
    def channels(self) -> set[str]:
        """The channels the listener keeps subscribed (without the prefix)."""
        with self._lock:
            return set(self._wanted)

    def live(self, channel: str) -> bool:
        """True when Redis counts this listener as a subscriber of `channel` (as last told)."""
        return channel in self._live

    @property
    def node(self) -> Any:
        """Cluster mode: the `ClusterNode` the connection is subscribed on (else None).

        Publishing through it keeps this service's count exact and its own messages ahead of the
        drain PING at close: a node counts and first delivers to its own subscribers.
        """
        return self._node

    def add(self, channel: str, *, wait: bool = True) -> bool:
        """Keep `channel` subscribed; when `wait`, wait (bounded) until Redis confirms it.

        Returns:
            True when Redis confirmed in time (False: it is subscribed once Redis answers).
        """
        with self._lock:
            if self._closed:
                return False
            flag = self._wanted.get(channel)
            if flag is None:
                flag = self._wanted[channel] = Flag()
            if self._worker is None or not self._worker.running():
                self._worker = Worker(self._run, "cachebolt-redis-pubsub")
        return flag.wait(self._confirm_timeout if wait else 0.0)

    def remove(self, channel: str) -> None:
        """Stop receiving `channel` (unsubscribed at the listener's next turn)."""
        with self._lock:
            self._wanted.pop(channel, None)

    def _run(self) -> None:
        delay = PUBSUB_RECONNECT_INITIAL_SECONDS
        lost = False
        while not self._stop.is_set():
            pubsub: Any = None
            subscribed: set[str] = set()
            try:
                pubsub, self._node = open_pubsub(self._client())
                while not self._stop.is_set():
                    self._sync_channels(pubsub, subscribed)
                    if not subscribed:
                        self._stop.wait(PUBSUB_POLL_SECONDS)
                        continue
                    message = pubsub.get_message(timeout=PUBSUB_POLL_SECONDS)
                    if message is None:
                        continue
                    if self._handle(message) and lost:
                        lost = False
                        delay = PUBSUB_RECONNECT_INITIAL_SECONDS
                        _logger.info("pub/sub reconnected; channels subscribed again")
                if subscribed:
                    self._drain(pubsub)
            except Exception as exc:
                if self._stop.is_set():
                    break
                mapped = translate(exc)
                if lost:
                    pass  # logged once per streak of failures
                elif not isinstance(mapped, BackendUnavailable):
                    _logger.exception("pub/sub listener error; reconnecting")
                else:
                    _logger.warning(
                        "pub/sub connection lost (%s); subscribing again when Redis answers",
                        mapped,
                    )
                lost = True
                self._unconfirm()
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, PUBSUB_RECONNECT_MAX_SECONDS)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _drain(self, pubsub: Any) -> None:
        """At close: deliver what Redis already queued for us (bounded by the command timeout).

        Redis answers a PING on this connection after every message it pushed to it before, so
        the messages published before `close()` (their PUBLISH has returned) all arrive first.
        """
        pubsub.ping(_DRAIN_PING)
        deadline = time.monotonic() + self._confirm_timeout
        while (left := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=left)
            if message is None:
                continue
            if _text(message.get("type")) == "pong":
                return
            self._handle(message)

    def _sync_channels(self, pubsub: Any, subscribed: set[str]) -> None:
        with self._lock:
            wanted = set(self._wanted)
        new = wanted - subscribed
        gone = subscribed - wanted
        if new:
            pubsub.subscribe(*(self._prefix + c for c in sorted(new)))
            subscribed |= new
            # redis-py's ClusterPubSub picks its node at the first SUBSCRIBE (the slot of the
            # first channel); a standalone PubSub has no `node`.
            self._node = getattr(pubsub, "node", None) or self._node
        if gone:
            pubsub.unsubscribe(*(self._prefix + c for c in sorted(gone)))
            subscribed -= gone

    def _handle(self, message: dict[str, Any]) -> bool:
        """Deliver a message or note a SUBSCRIBE confirmation; True for a confirmation."""
        kind = _text(message.get("type"))
        channel = _text(message.get("channel"))
        if not channel.startswith(self._prefix):
            return False
        channel = channel[len(self._prefix) :]
        if kind == "message":
            data = message.get("data")
            self._deliver(channel, data if isinstance(data, bytes) else _text(data).encode())
            return False
        if kind == "subscribe":
            with self._lock:
                self._live.add(channel)
                flag = self._wanted.get(channel)
                missed = channel in self._missed
                self._missed.discard(channel)
            if flag is not None:
                flag.set()
            if missed and self._resubscribed is not None:
                try:
                    self._resubscribed(channel)
                except Exception:
                    _logger.exception("resubscribe callback for %r failed", channel)
            return True
        if kind == "unsubscribe":
            with self._lock:
                self._live.discard(channel)
        return False

    def _unconfirm(self) -> None:
        # Subscriptions made while disconnected wait for the next confirmation.
        with self._lock:
            self._live.clear()
            self._missed.update(self._wanted)
            for channel in self._wanted:
                self._wanted[channel] = Flag()

    def close(self) -> None:
        """Stop the listener and close its connection (idempotent)."""
        with self._lock:
            self._closed = True
            self._wanted.clear()
            worker, self._worker = self._worker, None
        self._stop.set()
        if worker is not None and not worker.join(BACKGROUND_STOP_TIMEOUT_SECONDS):
            _logger.warning("the pub/sub listener did not stop in time")
