# generated from _async by scripts/unasync.py; do not edit
"""The cachebolt service: cache, locks, rate limits, pub/sub, sets, hashes and counters.

docs/ARCHITECTURE.md shows the layers under it; docs/semantics.md the behaviour at the edges.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator, Callable, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .._pubsub import Dispatcher
from .._synchronization import (
    SingleFlight,
    connect_at_init,
    invoke,
    sleep,
)
from .._codec import check_finite, decode, decode_error, encode, first_use
from .._constants import (
    DEFAULT_RATE_LIMIT_ALGORITHM,
    LOCK_FALLBACK_POLICIES,
    MEMORY_TOKEN_TAG,
    ON_LOST_POLICIES,
    ON_LOST_RAISE,
    ON_LOST_WARN,
    RATE_LIMIT_FALLBACK_POLICIES,
)
from .._core import MemoryStore
from .._memory import memory_backend, new_memory_store
from .._pubsub import LocalBroker, MessageCallback, Subscription
from .._redact import get_logger
from .._results import CacheStats, FencedLock, RateLimitResult, build_stats
from .._synchronization import Backoff, next_lock_wait
from .._validate import (
    callable_arg,
    choice_arg,
    cursor_arg,
    hash_value_arg,
    key_arg,
    optional_seconds_arg,
    pattern_arg,
    scan_count_arg,
    wait_seconds_arg,
)
from ..config import CacheConfig
from ..exceptions import (
    BackendUnavailable,
    LockLost,
    WrongTypeError,
    wrong_type_at,
)
from ..patterns import MAX_SCAN_COUNT
from .backend import Backend

if TYPE_CHECKING:  # imported when Redis mode is on: memory mode never loads redis-py
    from .fallback import FallbackBackend
    from .redis_pubsub import RedisListener

__all__ = ["CacheService"]

_logger = get_logger()
# orjson's dumps and loads once the first value is encoded or decoded (see `_codec.first_use`).
_dumps = first_use(globals(), "_dumps", "dumps")
_loads = first_use(globals(), "_loads", "loads")
_P = ParamSpec("_P")
_R = TypeVar("_R")


class CacheService:
    """One object for a TTL cache, token locks, exact rate limits, pub/sub, sets, hashes, counters.

    Values are JSON-encoded in every mode; TTLs are seconds, lock TTLs milliseconds. In Redis mode
    the in-memory store serves while Redis does not (docs/semantics.md, "When Redis fails").

    Args:
        config: the settings; None for the defaults (in-memory mode, zero config).
        store: a `MemoryStore` to serve from instead of a new one (e.g. `manual_clock=True` in
            tests); the service owns it: `reset()` flushes it, `close()` stops its sweep.
    """

    __slots__ = (
        "_backend",
        "_broker",
        "_closed",
        "_config",
        "_decode_errors",
        "_dispatcher",
        "_fallback",
        "_flights",
        "_listener",
        "_memory_store",
        "_resubscribe_hooks",
    )

    def __init__(self, config: CacheConfig | None = None, *, store: MemoryStore | None = None):
        self._config = CacheConfig() if config is None else config
        self._memory_store = new_memory_store(self._config) if store is None else store
        self._flights = SingleFlight()
        self._broker = LocalBroker()
        self._dispatcher = Dispatcher()
        self._listener: RedisListener | None = None
        self._resubscribe_hooks: dict[Subscription, Callable[[], object]] = {}
        self._closed = False
        self._decode_errors = 0
        memory = memory_backend(self._memory_store)
        self._backend: Backend = memory
        self._fallback: FallbackBackend | None = None
        if self._config.enabled:
            self._fallback = _redis_backend(self._config, memory)
            self._backend = self._fallback
            try:
                connect_at_init(self._fallback.connect)
            except BackendUnavailable:
                # `CacheConfig.required`: no service comes out, so its sweep thread stops too.
                self._memory_store.close()
                raise

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CacheService:
        """A service configured from environment variables (see `CacheConfig.from_env`).

        Raises:
            ConfigError: a variable has a bad value.
        """
        return cls(CacheConfig.from_env(environ))

    @property
    def config(self) -> CacheConfig:
        """The settings this service was built with."""
        return self._config

    # --- values ------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored at `key` (a JSON round trip), or `default` when missing or expired.

        Raises:
            SerializationError: the stored bytes are not valid JSON.
        """
        data = self._backend.get(key)
        if data is None:
            return default
        try:
            return _loads(data)
        except ValueError as exc:  # orjson.JSONDecodeError
            raise decode_error(key, exc) from exc

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` JSON-encoded, for `ttl` seconds (None: no expiry).

        Raises:
            SerializationError: `value` cannot be JSON-encoded; nothing is stored.
            ValueError: empty key, or `ttl` <= 0, NaN or infinite.
            TypeError: non-`str` key, or a `ttl` that is not a number.
        """
        # Plain orjson first: OPT_NON_STR_KEYS costs ~40% of an encode and only matters for dicts
        # with non-str keys, which land in `encode` (same output as the option always on).
        try:
            data = _dumps(value)
        except TypeError:
            data = encode(key, value)
        # orjson writes NaN and inf as null: only then can one hide (see `check_finite`).
        if 108 in data and data.find(b"null") != -1:
            check_finite(key, value)
        self._backend.set(key, data, ttl)

    def get_or_set(self, key: str, ttl: float | None, fn: Callable[[], object]) -> Any:
        """The value at `key`; on a miss, compute `fn()`, store it for `ttl` seconds, return it.

        Concurrent misses of one key call `fn` once (docs/semantics.md, "get_or_set").

        Args:
            fn: a function of no arguments (the asyncio service also takes coroutine functions).

        Returns:
            The JSON round trip of the stored value, as a later `get` returns it.

        Raises:
            SerializationError: the result of `fn` cannot be JSON-encoded; nothing is stored.
        """
        # Checked before `fn` runs: the backend sees `ttl` only when storing its result.
        key_arg(key)
        optional_seconds_arg(ttl, "ttl")
        callable_arg(fn, "fn")
        landed = self._flights.landed
        # A miss is counted once known: a computation, or a value another caller computed.
        data = self._backend.lookup(key)
        if data is not None:
            if _logger.isEnabledFor(logging.DEBUG):
                _logger.debug("cache hit: %s", key)
            try:
                return _loads(data)
            except ValueError as exc:  # orjson.JSONDecodeError
                self._undecodable(key, exc)
        elif _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("cache miss: %s", key)
        data = self._flights.run(key, partial(self._fill, key, ttl, fn, landed))
        return decode(key, data)

    def _undecodable(self, key: str, exc: ValueError) -> None:
        self._decode_errors += 1
        _logger.warning("the value stored at %r is not valid JSON, recomputed: %s", key, exc)

    def _fill(
        self, key: str, ttl: float | None, fn: Callable[[], object], landed: int
    ) -> bytes:
        # A flight that ended between our miss and this one's start may have stored the value:
        # look again only then (a miss is otherwise one lookup, `fn` and one store). `lookup`
        # counts no miss: an absent key is counted once, by `note_computed`.
        if self._flights.landed != landed:
            data = self._backend.lookup(key)
            if data is not None:
                try:
                    _loads(data)
                    return data
                except ValueError:
                    pass  # the foreign value this flight replaces (warned by its caller)
        self._flights.note_computed()
        data = encode(key, invoke(fn))
        self._backend.set(key, data, ttl)
        return data

    def delete(self, key: str) -> bool:
        """Remove `key` (of any type); True when a key was removed."""
        return self._backend.delete(key)

    def del_pattern(self, pattern: str) -> int:
        """Delete every key under the key prefix that matches a Redis glob `pattern` (never KEYS).

        Returns:
            The number of keys removed.

        Raises:
            ValueError: an empty pattern, or one longer than 512 characters.
            TypeError: `pattern` is not a str.
        """
        return self._backend.del_pattern(pattern_arg(pattern))

    def reset(self) -> None:
        """Delete every key of this service (only those under the key prefix in Redis mode).

        A prefix owns every key that starts with it: the reset of `app:` also deletes the keys
        of a service under `app:worker:` (see `CacheConfig.key_prefix`).
        """
        self._backend.flush()

    def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        """One step of an incremental walk over the keys matching a Redis glob `pattern`.

        Keys come without the key prefix; docs/semantics.md ("scan") states what a walk guarantees.

        Args:
            cursor: 0 to start, else the cursor returned by the previous step.
            pattern: a Redis glob over the keys without the prefix, at most 512 characters.
            count: how many keys to examine in this step, >= 1 (at most 1000 are).

        Returns:
            (next cursor, keys); next cursor 0 ends the walk.

        Raises:
            ValueError: a negative or too large `cursor`, `count` < 1, an empty pattern or one
                longer than 512 characters.
            TypeError: `cursor` or `count` is not an int, `pattern` not a str.
        """
        pattern_arg(pattern)
        cursor_arg(cursor)
        count = min(scan_count_arg(count), MAX_SCAN_COUNT)
        return self._backend.scan(cursor, pattern, count)

    # --- expiry and counters -----------------------------------------------------------------

    def ttl(self, key: str) -> int:
        """Seconds left before `key` expires: -2 when missing, -1 when it has no expiry."""
        return self._backend.ttl(key)

    def expire(self, key: str, ttl_seconds: float) -> bool:
        """Expire `key` after `ttl_seconds`; False when the key is missing."""
        return self._backend.expire(key, ttl_seconds)

    def incr(self, key: str) -> int:
        """Add 1 to the integer at `key` (a missing key counts from 0); the new value.

        Raises:
            WrongTypeError: the value at `key` is not an integer.
        """
        return self._backend.incrby(key, 1)

    def incrby(self, key: str, amount: int) -> int:
        """Add `amount` to the integer at `key` (a missing key counts from 0); the new value.

        Raises:
            WrongTypeError: the value at `key` is not an integer.
        """
        return self._backend.incrby(key, amount)

    def decr(self, key: str) -> int:
        """Subtract 1 from the integer at `key` (a missing key counts from 0); the new value.

        Raises:
            WrongTypeError: the value at `key` is not an integer.
        """
        return self._backend.incrby(key, -1)

    # --- locks -------------------------------------------------------------------------------

    def acquire_lock(
        self, lock_key: str, ttl_ms: int, fallback: str | None = None
    ) -> str | None:
        """Take the lock `lock:<lock_key>` for `ttl_ms` milliseconds if it is free.

        Args:
            fallback: "memory" or "fail_closed" while Redis is down, instead of
                `CACHE_LOCK_FALLBACK`; pass it by name.

        Returns:
            A random token that releases or extends the lock; None when the lock is held (or
            refused under "fail_closed").
        """
        # `fallback` is not keyword-only here nor in `check_rate_limit`: CPython 3.11 charges a
        # keyword-only default ~15 ns per call, 5-8 % of these calls in memory mode.
        try:
            if fallback is None:
                return self._backend.acquire_lock(lock_key, ttl_ms)
            taken = self._take_lock(lock_key, ttl_ms, fallback, False)
        except BackendUnavailable:
            return None  # refused by the "fail_closed" policy while Redis is down
        return None if taken is None else taken.token

    def _take_lock(
        self, lock_key: str, ttl_ms: int, fallback: str | None, fenced: bool
    ) -> FencedLock | None:
        """One attempt at the lock under an outage policy (None: the configured one).

        Raises:
            BackendUnavailable: Redis is down and the policy is "fail_closed".
        """
        if fallback is not None:
            choice_arg("fallback", fallback, LOCK_FALLBACK_POLICIES)
        router = self._fallback
        try:
            if router is not None:  # memory mode has no outage to follow a policy for
                if fenced:
                    taken = router.acquire_fenced_lock(lock_key, ttl_ms, fallback)
                else:
                    token = router.acquire_lock(lock_key, ttl_ms, fallback)
                    taken = None if token is None else (token, 0)
            elif fenced:
                taken = self._backend.acquire_fenced_lock(lock_key, ttl_ms)
            else:
                token = self._backend.acquire_lock(lock_key, ttl_ms)
                taken = None if token is None else (token, 0)
        except WrongTypeError as exc:
            raise wrong_type_at("lock", lock_key, exc) from exc
        return None if taken is None else FencedLock(*taken)

    def acquire_fenced_lock(
        self, lock_key: str, ttl_ms: int, fallback: str | None = None
    ) -> FencedLock | None:
        """Take the lock like `acquire_lock`, with a fence number for the resource it guards.

        Fences grow with every grant, in the same atomic step (docs/semantics.md, "Locks").

        Args:
            fallback: as for `acquire_lock`.

        Returns:
            `FencedLock(token, fence)`, or None when the lock is held (or refused under
            "fail_closed").

        Raises:
            WrongTypeError: the Redis fence counter holds data this library cannot have written;
                the lock is not taken.
        """
        try:
            return self._take_lock(lock_key, ttl_ms, fallback, True)
        except BackendUnavailable:
            return None

    def release_lock(self, lock_key: str, token: str) -> bool:
        """Release the lock when `token` holds it (atomically); False otherwise."""
        return self._backend.release_lock(lock_key, token)

    def extend_lock(self, lock_key: str, token: str, ttl_ms: int) -> bool:
        """Reset the lock's TTL to `ttl_ms` when `token` holds it; False otherwise."""
        return self._backend.extend_lock(lock_key, token, ttl_ms)

    @contextmanager
    def lock(
        self,
        lock_key: str,
        ttl_ms: int,
        *,
        wait_seconds: float = 0,
        fallback: str | None = None,
        on_lost: str = ON_LOST_RAISE,
    ) -> Iterator[str]:
        """Hold the lock for the body of a `with` block, releasing it on exit; yields the token.

        Args:
            wait_seconds: how long to wait for a held lock (polling with a jittered backoff).
            fallback: "memory" or "fail_closed" while Redis is down, instead of
                `CACHE_LOCK_FALLBACK`.
            on_lost: "raise" or "warn" when the release finds the lock lost (docs/semantics.md).

        Raises:
            LockNotAcquired: the lock was still held after `wait_seconds`.
            BackendUnavailable: Redis is down and the policy is "fail_closed" (after
                `wait_seconds`); the message names the cause.
            LockLost: the release found the lock expired or taken and `on_lost` is "raise".
        """
        with self._held(lock_key, ttl_ms, wait_seconds, False, fallback, on_lost) as held:
            yield held.token

    @contextmanager
    def fenced_lock(
        self,
        lock_key: str,
        ttl_ms: int,
        *,
        wait_seconds: float = 0,
        fallback: str | None = None,
        on_lost: str = ON_LOST_RAISE,
    ) -> Iterator[FencedLock]:
        """`lock()` with a fence number: yields `FencedLock(token, fence)`.

        Raises:
            LockNotAcquired: the lock was still held after `wait_seconds`.
            BackendUnavailable: Redis is down and the policy is "fail_closed".
            LockLost: the release found the lock lost and `on_lost` is "raise".
        """
        with self._held(lock_key, ttl_ms, wait_seconds, True, fallback, on_lost) as held:
            yield held

    @contextmanager
    def _held(
        self,
        lock_key: str,
        ttl_ms: int,
        wait_seconds: float,
        fenced: bool,
        fallback: str | None,
        on_lost: str,
    ) -> Iterator[FencedLock]:
        wait = wait_seconds_arg(wait_seconds)
        choice_arg("on_lost", on_lost, ON_LOST_POLICIES)
        held = self._acquire_waiting(lock_key, ttl_ms, wait, fenced, fallback)
        try:
            yield held
        except BaseException:
            # The body's own error goes on; a lost lock is only reported beside it.
            self._release_held(lock_key, ttl_ms, held.token, ON_LOST_WARN)
            raise
        self._release_held(lock_key, ttl_ms, held.token, on_lost)

    def _release_held(self, lock_key: str, ttl_ms: int, token: str, on_lost: str) -> None:
        """Release a lock a block held; a lock found lost raises `LockLost` or warns.

        Raises:
            LockLost: the lock expired or changed owner before the release, `on_lost="raise"`.
        """
        if self._backend.release_lock(lock_key, token):
            return
        router = self._fallback
        if (
            router is not None
            and not router.redis_available
            and not token.startswith(MEMORY_TOKEN_TAG)
        ):
            # A Redis lock while Redis is down: not known to be lost; it ends by its TTL.
            _logger.warning(
                "lock %r was not released: Redis is unreachable, the lock ends by its TTL "
                "(ttl_ms=%d)",
                lock_key,
                ttl_ms,
            )
            return
        if on_lost == ON_LOST_RAISE:
            raise LockLost(lock_key, ttl_ms)
        _logger.warning(
            "lock %r was lost before its release: it expired or changed owner while the block "
            "ran (ttl_ms=%d too short?)",
            lock_key,
            ttl_ms,
        )

    def _acquire_waiting(
        self, lock_key: str, ttl_ms: int, wait_seconds: float, fenced: bool, fallback: str | None
    ) -> FencedLock:
        """The lock, waiting up to `wait_seconds` while it is held or refused by the outage policy.

        Raises:
            LockNotAcquired: still held after `wait_seconds`.
            BackendUnavailable: still refused under "fail_closed" after `wait_seconds`.
        """
        backoff = Backoff(wait_seconds)
        while True:
            refused: BackendUnavailable | None = None
            try:
                taken = self._take_lock(lock_key, ttl_ms, fallback, fenced)
            except BackendUnavailable as exc:
                taken, refused = None, exc
            if taken is not None:
                return taken
            sleep(next_lock_wait(backoff, lock_key, wait_seconds, refused))

    # --- rate limits -------------------------------------------------------------------------

    def check_rate_limit(
        self, key: str, limit: int, ttl_seconds: float, fallback: str | None = None
    ) -> bool:
        """Record one hit at `ratelimit:<key>` if fewer than `limit` fell in the last `ttl_seconds`.

        Args:
            fallback: "memory", "fail_closed" (denied) or "fail_open" (allowed) while Redis is
                down, instead of `CACHE_RATE_LIMIT_FALLBACK`.

        Returns:
            True when the hit is allowed (sliding log: exact; a denied hit consumes nothing).
        """
        try:
            if fallback is None:
                allowed = (
                    self._backend.rate_limit(
                        key, limit, ttl_seconds, 1, DEFAULT_RATE_LIMIT_ALGORITHM
                    )
                )[0]
            else:
                allowed = (
                    self._rate_limit(
                        key, limit, ttl_seconds, 1, DEFAULT_RATE_LIMIT_ALGORITHM, fallback
                    )
                )[0]
        except WrongTypeError as exc:
            raise wrong_type_at("rate limit", key, exc) from exc
        # Denials are routine (and an attacker's favourite): DEBUG only, never a log line per hit.
        if not allowed and _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("rate limit exceeded: %s", key)
        return allowed

    def hit_rate_limit(
        self,
        key: str,
        limit: int,
        window_seconds: float,
        *,
        cost: int = 1,
        algorithm: str = DEFAULT_RATE_LIMIT_ALGORITHM,
        fallback: str | None = None,
    ) -> RateLimitResult:
        """Record `cost` hits at `ratelimit:<key>` if they fit in `limit` per `window_seconds`.

        Args:
            key: what is limited (a user, an IP and an endpoint, ...).
            limit: hits allowed per window, >= 1.
            window_seconds: the window, seconds > 0.
            cost: hits this call counts for (0 peeks); a cost above `limit` is always denied.
            algorithm: "sliding_log", "fixed_window", "sliding_counter" or "gcra"
                (docs/semantics.md, "Rate-limit windows").
            fallback: as for `check_rate_limit`.

        Returns:
            The outcome, truthy when allowed; a denied call consumes nothing.

        Raises:
            WrongTypeError: the key holds another type, another algorithm's state, or state this
                library cannot have written; nothing is recorded.
        """
        try:
            allowed, remaining, reset_after, retry_after = self._rate_limit(
                key, limit, window_seconds, cost, algorithm, fallback
            )
        except WrongTypeError as exc:
            raise wrong_type_at("rate limit", key, exc) from exc
        if not allowed and _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("rate limit exceeded: %s", key)
        return RateLimitResult(allowed, limit, remaining, reset_after, retry_after)

    def _rate_limit(
        self,
        key: str,
        limit: int,
        window_seconds: float,
        cost: int,
        algorithm: str,
        fallback: str | None,
    ) -> tuple[bool, int, float, float]:
        """One rate-limit hit under an outage policy (None: the configured one)."""
        if fallback is not None:
            choice_arg("fallback", fallback, RATE_LIMIT_FALLBACK_POLICIES)
        router = self._fallback
        if router is None:  # memory mode has no outage to follow a policy for
            return self._backend.rate_limit(key, limit, window_seconds, cost, algorithm)
        return router.rate_limit(key, limit, window_seconds, cost, algorithm, fallback)

    def hit_rate_limits(
        self,
        limits: Sequence[tuple[str, int, float]],
        *,
        cost: int = 1,
        algorithm: str = DEFAULT_RATE_LIMIT_ALGORITHM,
    ) -> tuple[RateLimitResult, ...]:
        """Record `cost` hits at every `(key, limit, window_seconds)` if each fits, else at none.

        Atomic, also across processes on Redis; in a Redis Cluster the keys must share one hash tag.

        Args:
            limits: one (key, limit, window_seconds) per key; keys distinct.
            cost: hits the call counts for at every key (0 peeks).
            algorithm: "sliding_log" (exact), "fixed_window", "sliding_counter" or "gcra"
                (exact), as in `hit_rate_limit`.

        Returns:
            One result per key, in order; the call was admitted iff all are truthy.
        """
        keys: list[str] = []
        limit_values: list[int] = []
        windows: list[float] = []
        for item in limits:
            if not isinstance(item, tuple) or len(item) != 3:
                raise TypeError(
                    f"limits must hold (key, limit, window_seconds) tuples, got {item!r}"
                )
            keys.append(item[0])
            limit_values.append(item[1])
            windows.append(item[2])
        try:
            answers = self._backend.rate_limit_many(
                keys, limit_values, windows, cost, algorithm
            )
        except WrongTypeError as exc:
            raise wrong_type_at("one of the rate limits", keys, exc) from exc
        results = tuple(
            RateLimitResult(allowed, limit, remaining, reset_after, retry_after)
            for limit, (allowed, remaining, reset_after, retry_after) in zip(
                limit_values, answers, strict=True
            )
        )
        if _logger.isEnabledFor(logging.DEBUG) and not all(results):
            _logger.debug("rate limit exceeded: %s", ", ".join(keys))
        return results

    # --- pub/sub -----------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        callback: MessageCallback,
        *,
        on_resubscribe: Callable[[], object] | None = None,
    ) -> Subscription:
        """Call `callback` with every message published on `channel` from now on.

        Delivery is at most once in Redis mode (docs/semantics.md, "Pub/sub").

        Args:
            channel: the channel name (the key prefix is prepended on Redis).
            callback: called with each JSON-decoded message; an exception in it is logged.
            on_resubscribe: a plain function run after Redis confirms the channel again following
                a disconnection (messages may have been lost); never called in memory mode.

        Returns:
            The subscription; `.unsubscribe()` or leaving its `with` block ends it.
        """
        key_arg(channel, "channel")
        callable_arg(callback, "callback")
        if on_resubscribe is not None:
            callable_arg(on_resubscribe, "on_resubscribe")
        subscription = Subscription(channel, callback, self._unsubscribe)
        if on_resubscribe is not None:
            self._resubscribe_hooks[subscription] = on_resubscribe
        self._dispatcher.register(subscription)
        self._broker.add(subscription)
        fallback = self._fallback
        if fallback is not None:
            fallback.connect()
            if self._listener is None:
                from .redis_pubsub import RedisListener

                self._listener = RedisListener(
                    lambda: fallback.client,
                    self._config.key_prefix,
                    self._deliver,
                    confirm_timeout=self._config.command_timeout_ms / 1000,
                    resubscribed=self._resubscribed,
                )
            self._listener.add(channel, wait=fallback.redis_available)
        return subscription

    def _resubscribed(self, channel: str) -> None:
        # Called by the listener when Redis confirms `channel` again after a lost connection.
        for subscription in self._broker.receivers(channel):
            hook = self._resubscribe_hooks.get(subscription)
            if hook is not None:
                try:
                    hook()
                except Exception:
                    _logger.exception("on_resubscribe of %r failed", subscription)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._resubscribe_hooks.pop(subscription, None)
        self._broker.remove(subscription)
        self._dispatcher.unregister(subscription)
        listener = self._listener
        if listener is not None and not self._broker.receivers(subscription.channel):
            listener.remove(subscription.channel)

    def publish(self, channel: str, message: Any) -> int:
        """Send `message` (JSON-encoded) to every subscription of `channel`.

        Returns:
            The number of subscriptions reached (docs/semantics.md, "Pub/sub", for Redis and
            cluster counts).

        Raises:
            SerializationError: `message` cannot be JSON-encoded; nothing is delivered.
        """
        key_arg(channel, "channel")
        data = encode(channel, message, "message for channel")
        if self._fallback is not None:
            listener = self._listener
            # Cluster mode: PUBLISH on the node of our own listener, so that the count below
            # includes its connection (a node counts only its own subscribers; subscribers of
            # other services on other nodes get the message over the cluster bus, uncounted).
            node = None if listener is None else listener.node
            reached = self._fallback.publish(self._config.key_prefix + channel, data, node)
            if reached is not None:
                if listener is not None and listener.live(channel):
                    reached += len(self._broker.receivers(channel)) - 1
                return reached
        return self._deliver(channel, data)

    def _deliver(self, channel: str, data: bytes) -> int:
        receivers = self._broker.receivers(channel)
        for subscription in receivers:
            self._dispatcher.submit(subscription, data)
        return len(receivers)

    # --- sets --------------------------------------------------------------------------------

    def sadd(self, key: str, *members: str) -> int:
        """Add `str` members to the set at `key`; the count newly added.

        Raises:
            WrongTypeError: `key` holds another type.
        """
        return self._backend.sadd(key, *members)

    def srem(self, key: str, *members: str) -> int:
        """Remove members from the set at `key`; the count removed (an emptied set disappears)."""
        return self._backend.srem(key, *members)

    def sismember(self, key: str, member: str) -> bool:
        """True when `member` is in the set at `key`."""
        return self._backend.sismember(key, member)

    def smembers(self, key: str) -> builtins.set[str]:
        """Every member of the set at `key` (empty when missing)."""
        return self._backend.smembers(key)

    def scard(self, key: str) -> int:
        """The number of members of the set at `key`."""
        return self._backend.scard(key)

    # --- hashes ------------------------------------------------------------------------------

    def hset(self, key: str, field: str, value: str | int | float) -> int:
        """Set `field` of the hash at `key`; ints and floats are stored as text (`str(value)`).

        Returns:
            1 when the field is new, 0 when it was overwritten.
        """
        return self._backend.hset(key, field, hash_value_arg(key, value))

    def hget(self, key: str, field: str) -> str | None:
        """The text of `field` in the hash at `key`, or None."""
        return self._backend.hget(key, field)

    def hgetall(self, key: str) -> dict[str, str]:
        """Every field of the hash at `key` (empty when missing)."""
        return self._backend.hgetall(key)

    def hdel(self, key: str, *fields: str) -> int:
        """Remove fields of the hash at `key`; the count removed."""
        return self._backend.hdel(key, *fields)

    # --- decorators --------------------------------------------------------------------------

    def cached(
        self, *, ttl: float | None, key: str | None = None
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorate a function so its result is cached (see `cachebolt.decorators.cached`)."""
        from .. import decorators

        return decorators.cached(self, ttl=ttl, key=key)

    def rate_limited(
        self,
        *,
        limit: int,
        window_seconds: float,
        key: str | None = None,
        algorithm: str = DEFAULT_RATE_LIMIT_ALGORITHM,
        cost: int = 1,
        fallback: str | None = None,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorate a function with a rate limit (see `cachebolt.decorators.rate_limited`)."""
        from .. import decorators

        return decorators.rate_limited(
            self,
            limit=limit,
            window_seconds=window_seconds,
            key=key,
            algorithm=algorithm,
            cost=cost,
            fallback=fallback,
        )

    def with_lock(
        self,
        name_template: str,
        *,
        ttl_ms: int,
        wait_seconds: float = 0,
        fallback: str | None = None,
        on_lost: str = ON_LOST_RAISE,
    ) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
        """Decorate a function to run under a lock (see `cachebolt.decorators.with_lock`)."""
        from .. import decorators

        return decorators.with_lock(
            self,
            name_template,
            ttl_ms=ttl_ms,
            wait_seconds=wait_seconds,
            fallback=fallback,
            on_lost=on_lost,
        )

    # --- service -----------------------------------------------------------------------------

    def connect(self) -> bool:
        """Connect to Redis now, bounded by `VALKEY_CONNECT_TIMEOUT_MS` (once; idempotent).

        Returns:
            True when Redis serves the calls; False when memory does (also in memory mode).

        Raises:
            BackendUnavailable: `CacheConfig.required` is set and Redis did not answer; the next
                call tries again.
        """
        if self._fallback is None:
            return False
        return self._fallback.connect()

    def ping(self) -> float | None:
        """The round trip of one PING to Redis, in seconds; None when Redis does not serve."""
        if self._fallback is None:
            return None
        return self._fallback.ping()

    def is_redis_available(self) -> bool:
        """True when Redis serves the calls now; False while it is down, and in memory mode.

        No I/O: this is what the last call or probe saw.
        """
        return self._fallback is not None and self._fallback.redis_available

    def get_client(self) -> Any:
        """The redis-py client (Redis mode, also while Redis is down), or None in memory mode."""
        return None if self._fallback is None else self._fallback.client

    @property
    def _backend_name(self) -> str:
        return "memory" if self._fallback is None else self._fallback.serving

    def stats_snapshot(self) -> CacheStats:
        """`stats()` without I/O, for metrics scrapes (also of the asyncio service, from any
        thread): this process's counters as they stand; in Redis mode `keys`, `evictions` and
        `expired` are those of the last `stats()` call (0 before the first)."""
        memory = self._memory_store.stats()
        fallback = self._fallback
        return self._build_stats(memory if fallback is None else fallback.snapshot(memory))

    def stats(self) -> CacheStats:
        """Counters: hits, misses, locks, rate limits, keys, memory, fallback (backends summed)."""
        return self._build_stats(self._backend.stats())

    def _build_stats(self, raw: Mapping[str, int]) -> CacheStats:
        fallback = self._fallback
        return build_stats(
            raw,
            backend=self._backend_name,
            redis_available=self.is_redis_available(),
            breaker_state="disabled" if fallback is None else fallback.state,
            redis_maxmemory_policy="disabled" if fallback is None else fallback.maxmemory_policy,
            decode_errors=self._decode_errors,
            coalesced=self._flights.shared,
            computed=self._flights.computed + self._flights.failed,
        )

    def close(self) -> None:
        """Deliver the messages already received, end every subscription, stop background work.

        Idempotent; the service keeps answering afterwards (docs/semantics.md, "When Redis fails").
        """
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._dispatcher.close()
        for subscription in self._broker.all():
            subscription.unsubscribe()
        if not self._closed or self._fallback is not None:
            # Redis mode closes every time: a call after close() opened a new client.
            self._closed = True
            self._backend.close()

    def __enter__(self) -> CacheService:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CacheService backend={self._backend_name!r} config={self._config!r}>"


def _redis_backend(config: CacheConfig, memory: Backend) -> FallbackBackend:
    """The Redis backend behind the fallback layer (redis-py is imported only in Redis mode)."""
    from .fallback import FallbackBackend
    from .redis_backend import RedisBackend

    return FallbackBackend(
        RedisBackend(config),
        memory,
        lock_fallback=config.lock_fallback,
        rate_limit_fallback=config.rate_limit_fallback,
        required=config.required,
    )
