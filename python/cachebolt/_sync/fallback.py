# generated from _async by scripts/unasync.py; do not edit
"""`FallbackBackend`: Redis while it answers, the in-memory backend while it does not.

Every call goes to Redis while the circuit breaker (`cachebolt._breaker`) is closed. A call that
meets `BackendUnavailable` (refused, reset, timed out, login refused) opens the breaker, logs one
ERROR line, and is served by the memory backend, with no exception; so are the calls that follow,
at once and with no Redis timeout to wait for. A background probe (a task of the event loop here,
a daemon thread in the blocking twin) PINGs Redis with a capped exponential backoff (100 ms
doubling to 2 s, jittered) and closes the breaker when Redis answers: one INFO line, and the
calls go back to Redis.

Connecting: `connect()` PINGs Redis once, bounded by `VALKEY_CONNECT_TIMEOUT_MS`; refused,
unreachable or a wrong password is an outage from the start (one ERROR line, memory serves,
the probe keeps trying). Until `connect()` has run, the first call runs it (the asyncio service
cannot in `__init__`); concurrent first calls wait for that one attempt.

Locks and rate limits while Redis is down follow the policies of `CacheConfig`:
`lock_fallback` ("memory" or "fail_closed") and `rate_limit_fallback` ("memory", "fail_closed"
or "fail_open"). Taken in memory, they hold in this process only: a WARNING says so once per
outage and per kind, and `stats()` counts them (`fallback_locks`, `fallback_rate_limits`).

A lock token goes back to the backend that issued it. Tokens issued by memory while Redis was
down carry the `mem-` tag, so their release and extension go to memory even after Redis has
returned; a Redis token is never checked against memory (while Redis is down, its release and
extension answer False: the lock expires in Redis by its TTL). A fenced lock taken in memory
(`acquire_fenced_lock`) carries a fence of the memory store's own sequence (1, 2, ... in this
process), which must not be compared with Redis fences: its "mem-" token tells the holder so.

When Redis answers again, the calls go back to Redis first, then the memory backend drops what
the outage left in it (values, sets, counters, rate-limit state), except the locks still held, so
a later outage never serves data from an earlier one (should Redis fail again during the drop,
the new outage's first memory writes may be dropped too: misses, never stale reads). Writes made
during the outage are not copied to Redis.

A call that timed out on Redis may have run there (an `incr`, a `set`); it is then also run in
memory. That is the price of never making callers wait.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any, Protocol

from .._synchronization import Flag, Mutex, Worker
from .._breaker import BreakerState, CircuitBreaker
from .._constants import (
    BACKGROUND_STOP_TIMEOUT_SECONDS,
    DEFAULT_LOCK_FALLBACK,
    DEFAULT_RATE_LIMIT_FALLBACK,
    FALLBACK_FAIL_CLOSED,
    FALLBACK_FAIL_OPEN,
    FALLBACK_MEMORY,
    LOCK_FALLBACK_POLICIES,
    MEMORY_TOKEN_TAG,
    PROBE_MAX_SECONDS,
    RATE_LIMIT_FALLBACK_POLICIES,
)
from .._redact import get_logger
from .._validate import (
    check_algorithm,
    check_cost,
    check_key,
    check_limit,
    check_ttl,
    check_ttl_ms,
    rate_limit_many_args,
)
from ..exceptions import BackendUnavailable
from .backend import Backend

__all__ = ["FallbackBackend", "PrimaryBackend"]

_logger = get_logger()
_LOCK_PREFIX = "lock:"
# Counters summed over both backends (and the policy answers) in `stats()`.
_SUMMED = (
    "hits",
    "misses",
    "lock_acquired",
    "lock_contended",
    "rate_limit_allowed",
    "rate_limit_denied",
    "evictions",
    "expired",
)


class PrimaryBackend(Backend, Protocol):
    """What the fallback needs from the Redis backend beyond `Backend`."""

    @property
    def client(self) -> Any:
        """The redis-py client."""
        ...

    def counters(self) -> dict[str, int]:
        """This process's hit, lock and rate-limit counters (no I/O)."""
        ...

    def publish(self, channel: str, data: bytes, node: Any = None) -> int:
        """PUBLISH (channel already prefixed) on `node` of a cluster, or where redis-py routes."""
        ...

    def connect(self) -> None:
        """PING once, bounded by the connect timeout; `BackendUnavailable` when no answer."""
        ...

    def ping(self) -> float:
        """One PING; its round-trip time in seconds."""
        ...


class FallbackBackend:
    """Redis behind a circuit breaker, the memory backend in front of every outage.

    Args:
        primary: the Redis backend (not connected yet: `connect()` or the first call does it).
        memory: the in-memory backend that serves while Redis does not answer.
        lock_fallback: "memory" or "fail_closed" (see the module docstring).
        rate_limit_fallback: "memory", "fail_closed" or "fail_open".
        breaker: the state machine (tests inject one with short probe delays).
    """

    def __init__(
        self,
        primary: PrimaryBackend,
        memory: Backend,
        *,
        lock_fallback: str = DEFAULT_LOCK_FALLBACK,
        rate_limit_fallback: str = DEFAULT_RATE_LIMIT_FALLBACK,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if lock_fallback not in LOCK_FALLBACK_POLICIES:
            raise ValueError(f"unknown lock_fallback {lock_fallback!r}")
        if rate_limit_fallback not in RATE_LIMIT_FALLBACK_POLICIES:
            raise ValueError(f"unknown rate_limit_fallback {rate_limit_fallback!r}")
        self._primary = primary
        self._memory = memory
        self._lock_fallback = lock_fallback
        self._rate_limit_fallback = rate_limit_fallback
        self.breaker = CircuitBreaker() if breaker is None else breaker
        # True while calls go to Redis: connected and the breaker closed (one attribute read).
        self._up = False
        self._connected = False  # the first connection attempt has finished
        self._connect_mutex = Mutex()
        self._closed = False
        self._stop = Flag()
        self._probe: Worker | None = None
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(
            (
                "fallback_calls",
                "fallback_locks",
                "fallback_rate_limits",
                "lock_contended",
                "rate_limit_allowed",
                "rate_limit_denied",
            ),
            0,
        )
        self._warned: set[str] = set()  # kinds warned about in this outage
        self._redis_stats: dict[str, int] = {}  # the last counters Redis gave

    # --- state -------------------------------------------------------------------------------

    @property
    def redis_available(self) -> bool:
        """True when the next call goes to Redis.

        The breaker is closed and Redis answered, or it has not been tried yet (the first call
        connects).
        """
        return self._up or not self._connected

    @property
    def serving(self) -> str:
        """The backend the next call goes to: "redis" or "memory"."""
        return "redis" if self.redis_available else "memory"

    @property
    def state(self) -> BreakerState | str:
        """The breaker's state, or "connecting" before the first connection attempt."""
        return self.breaker.state if self._connected else "connecting"

    @property
    def client(self) -> Any:
        """The redis-py client of the Redis backend (None when it cannot be built now)."""
        try:
            return self._primary.client
        except BackendUnavailable:  # a cluster client discovers its nodes when built
            return None

    def connect(self) -> bool:
        """Connect to Redis once, bounded by the connect timeout (later calls return at once).

        Returns:
            True when Redis answered; False when memory serves (and the probe keeps trying).
        """
        if self._connected:
            return self._up
        with self._connect_mutex:
            if self._connected or self._closed:
                return self._up
            try:
                self._primary.connect()
            except BackendUnavailable as exc:
                self._connected = True
                self._tripped(exc, at_start=True)
                return False
            self._connected = True
            self._up = self.breaker.closed
            return self._up

    def _first(self) -> bool:
        # The slow path of every call while `_up` is False: connect once, else serve from memory.
        if self._connected:
            return False
        return self.connect()

    def _tripped(self, exc: BaseException, *, at_start: bool = False) -> None:
        if self._closed and not at_start:
            return  # a call cut short by close(), or made after it: memory serves only this one
        self._up = False
        if not self.breaker.trip():
            return
        with self._counts_lock:
            self._warned.clear()
        if at_start:
            _logger.error("Redis unavailable at start-up (%s); serving from memory", exc)
        else:
            _logger.error("Redis unavailable (%s); serving from memory until it answers", exc)
        if not self._closed:
            self._probe = Worker(self._probe_loop, "cachebolt-redis-probe")

    def _probe_loop(self) -> None:
        while not self._stop.wait(self.breaker.next_probe_delay()):
            if not self.breaker.probe_started():
                return
            try:
                self._primary.ping()
            except BackendUnavailable:
                self.breaker.probe_failed()
                continue
            except Exception:
                _logger.exception("Redis probe failed unexpectedly")
                self.breaker.probe_failed()
                continue
            self._recovered()
            return

    def _recovered(self) -> None:
        seconds = self.breaker.open_seconds()
        if not self.breaker.reset() or self._closed:
            return
        # Switch first, then drop: calls stop writing to memory before it is emptied. Dropping
        # first let the calls made during the drop (memory still served them) leave values that
        # a later outage then read back.
        self._up = True
        try:
            self._drop_outage_data()
        except Exception:
            _logger.exception("could not clear the memory backend after the outage")
        with self._counts_lock:
            counted = self._counts["fallback_calls"]
        _logger.info(
            "Redis answers again after %.1f s; serving from Redis (%d calls were served by "
            "memory so far)",
            seconds,
            counted,
        )

    def _drop_outage_data(self) -> None:
        """Delete what memory holds, except held locks: the next outage starts clean."""
        cursor = 0
        while True:
            cursor, keys = self._memory.scan(cursor, "*", 500)
            for key in keys:
                if not key.startswith(_LOCK_PREFIX):
                    self._memory.delete(key)
            if cursor == 0:
                return

    def _count(self, *names: str) -> None:
        with self._counts_lock:
            for name in names:
                self._counts[name] += 1

    def _warn_local(self, kind: str) -> None:
        with self._counts_lock:
            if kind in self._warned:
                return
            self._warned.add(kind)
        _logger.warning(
            "Redis is down: %s are now taken in this process's memory and hold in this process "
            "only (other processes do not see them)",
            kind,
        )

    # --- values ------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if self._up or self._first():
            try:
                return self._primary.get(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.get(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if self._up or self._first():
            try:
                return self._primary.set(key, value, ttl)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.set(key, value, ttl)

    def delete(self, key: str) -> bool:
        if self._up or self._first():
            try:
                return self._primary.delete(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.delete(key)

    def exists(self, key: str) -> bool:
        if self._up or self._first():
            try:
                return self._primary.exists(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.exists(key)

    def incrby(self, key: str, amount: int) -> int:
        if self._up or self._first():
            try:
                return self._primary.incrby(key, amount)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.incrby(key, amount)

    def ttl(self, key: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.ttl(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.ttl(key)

    def expire(self, key: str, ttl: float) -> bool:
        if self._up or self._first():
            try:
                return self._primary.expire(key, ttl)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.expire(key, ttl)

    def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        # A cursor belongs to one backend: a scan that straddles a transition may miss keys.
        if self._up or self._first():
            try:
                return self._primary.scan(cursor, pattern, count)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.scan(cursor, pattern, count)

    def ping(self) -> float | None:
        """One PING when Redis serves: its round trip in seconds; None while memory serves."""
        if self._up or self._first():
            try:
                return self._primary.ping()
            except BackendUnavailable as exc:
                self._tripped(exc)
        return None

    def del_pattern(self, pattern: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.del_pattern(pattern)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.del_pattern(pattern)

    def flush(self) -> int:
        if self._up or self._first():
            try:
                return self._primary.flush()
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.flush()

    # --- sets and hashes ---------------------------------------------------------------------

    def sadd(self, key: str, *members: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.sadd(key, *members)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.sadd(key, *members)

    def srem(self, key: str, *members: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.srem(key, *members)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.srem(key, *members)

    def sismember(self, key: str, member: str) -> bool:
        if self._up or self._first():
            try:
                return self._primary.sismember(key, member)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.sismember(key, member)

    def smembers(self, key: str) -> builtins.set[str]:
        if self._up or self._first():
            try:
                return self._primary.smembers(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.smembers(key)

    def scard(self, key: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.scard(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.scard(key)

    def hset(self, key: str, field: str, value: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.hset(key, field, value)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.hset(key, field, value)

    def hget(self, key: str, field: str) -> str | None:
        if self._up or self._first():
            try:
                return self._primary.hget(key, field)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.hget(key, field)

    def hgetall(self, key: str) -> dict[str, str]:
        if self._up or self._first():
            try:
                return self._primary.hgetall(key)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.hgetall(key)

    def hdel(self, key: str, *fields: str) -> int:
        if self._up or self._first():
            try:
                return self._primary.hdel(key, *fields)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return self._memory.hdel(key, *fields)

    # --- locks -------------------------------------------------------------------------------

    def acquire_lock(self, key: str, ttl_ms: int) -> str | None:
        if self._up or self._first():
            try:
                return self._primary.acquire_lock(key, ttl_ms)
            except BackendUnavailable as exc:
                self._tripped(exc)
        taken = self._memory_lock(key, ttl_ms, fenced=False)
        return None if taken is None else taken[0]

    def acquire_fenced_lock(self, key: str, ttl_ms: int) -> tuple[str, int] | None:
        if self._up or self._first():
            try:
                return self._primary.acquire_fenced_lock(key, ttl_ms)
            except BackendUnavailable as exc:
                self._tripped(exc)
        return self._memory_lock(key, ttl_ms, fenced=True)

    def _memory_lock(self, key: str, ttl_ms: int, *, fenced: bool) -> tuple[str, int] | None:
        """A lock while Redis is down, by the lock policy: (tagged token, fence) or None.

        A fence from memory is a separate sequence (comparable only within this process); the
        "mem-" tag of its token tells the holder so. `fenced=False` gives fence 0.
        """
        if self._lock_fallback == FALLBACK_FAIL_CLOSED:
            check_key(key, "lock_key")
            check_ttl_ms(ttl_ms)
            self._count("fallback_calls", "lock_contended")
            return None
        if fenced:
            taken = self._memory.acquire_fenced_lock(key, ttl_ms)
        else:
            token = self._memory.acquire_lock(key, ttl_ms)
            taken = None if token is None else (token, 0)
        self._count("fallback_calls")
        if taken is None:
            return None
        self._count("fallback_locks")
        self._warn_local("locks")
        return MEMORY_TOKEN_TAG + taken[0], taken[1]

    def release_lock(self, key: str, token: str) -> bool:
        if isinstance(token, str) and token.startswith(MEMORY_TOKEN_TAG):
            return self._memory.release_lock(key, token[len(MEMORY_TOKEN_TAG) :])
        if self._up or self._first():
            try:
                return self._primary.release_lock(key, token)
            except BackendUnavailable as exc:
                self._tripped(exc)
        # A Redis token while Redis is down: it cannot be released; it expires by its TTL.
        check_key(key, "lock_key")
        check_key(token, "token")
        self._count("fallback_calls")
        return False

    def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        if isinstance(token, str) and token.startswith(MEMORY_TOKEN_TAG):
            raw = token[len(MEMORY_TOKEN_TAG) :]
            return self._memory.extend_lock(key, raw, ttl_ms)
        if self._up or self._first():
            try:
                return self._primary.extend_lock(key, token, ttl_ms)
            except BackendUnavailable as exc:
                self._tripped(exc)
        check_key(key, "lock_key")
        check_key(token, "token")
        check_ttl_ms(ttl_ms)
        self._count("fallback_calls")
        return False

    # --- rate limits -------------------------------------------------------------------------

    def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> tuple[bool, int, float, float]:
        if self._up or self._first():
            try:
                return self._primary.rate_limit(key, limit, window, cost, algorithm)
            except BackendUnavailable as exc:
                self._tripped(exc)
        policy = self._rate_limit_fallback
        if policy != FALLBACK_MEMORY:
            check_key(key)
            check_limit(limit)
            check_ttl(window, "window")
            check_cost(cost)
            check_algorithm(algorithm)
            if cost <= limit:  # a cost above the limit is denied by every policy (memory says)
                if policy == FALLBACK_FAIL_OPEN:
                    self._count("fallback_calls", "rate_limit_allowed")
                    return True, limit - cost, 0.0, 0.0
                # Fail closed: retry when the breaker may have closed again.
                retry = min(float(window), PROBE_MAX_SECONDS)
                self._count("fallback_calls", "rate_limit_denied")
                return False, 0, retry, retry
        result = self._memory.rate_limit(key, limit, window, cost, algorithm)
        self._count("fallback_calls", "fallback_rate_limits")
        self._warn_local("rate limits")
        return result

    def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> list[tuple[bool, int, float, float]]:
        if self._up or self._first():
            try:
                return self._primary.rate_limit_many(keys, limits, windows, cost, algorithm)
            except BackendUnavailable as exc:
                self._tripped(exc)
        policy = self._rate_limit_fallback
        if policy != FALLBACK_MEMORY:
            # The policies of `rate_limit`, for the call as a whole.
            _, checked_limits, windows_ms, cost = rate_limit_many_args(
                keys, limits, windows, cost, algorithm
            )
            if all(cost <= limit for limit in checked_limits):
                if policy == FALLBACK_FAIL_OPEN:
                    self._count("fallback_calls", "rate_limit_allowed")
                    return [(True, limit - cost, 0.0, 0.0) for limit in checked_limits]
                self._count("fallback_calls", "rate_limit_denied")
                return [
                    (False, 0, retry, retry)
                    for retry in (min(ms / 1000, PROBE_MAX_SECONDS) for ms in windows_ms)
                ]
        results = self._memory.rate_limit_many(keys, limits, windows, cost, algorithm)
        self._count("fallback_calls", "fallback_rate_limits")
        self._warn_local("rate limits")
        return results

    # --- pub/sub -----------------------------------------------------------------------------

    def publish(self, channel: str, data: bytes, node: Any = None) -> int | None:
        """PUBLISH on Redis (channel already prefixed): the receivers Redis counted.

        Args:
            node: cluster mode: the node to publish on (the service's own listener node), else
                redis-py routes by the channel's slot.

        Returns:
            None while Redis is down: the caller delivers in-process instead.
        """
        if self._up or self._first():
            try:
                return self._primary.publish(channel, data, node)
            except BackendUnavailable as exc:
                self._tripped(exc)
        self._count("fallback_calls")
        return None

    # --- service -----------------------------------------------------------------------------

    def fallback_counts(self) -> dict[str, int]:
        """fallback_calls, fallback_locks and fallback_rate_limits so far."""
        with self._counts_lock:
            return {k: v for k, v in self._counts.items() if k.startswith("fallback_")}

    def snapshot(self, memory: dict[str, int]) -> dict[str, int]:
        """`stats()` without I/O: this process's live counters, `memory` (the memory store's
        counters) and, for keys/evictions/expired, what Redis said at the last `stats()`."""
        redis = {**self._redis_stats, **self._primary.counters()}
        with self._counts_lock:
            counts = dict(self._counts)
        merged = dict(memory if not self._up else redis)
        for name in _SUMMED:
            merged[name] = memory.get(name, 0) + redis.get(name, 0) + counts.get(name, 0)
        for name in ("fallback_calls", "fallback_locks", "fallback_rate_limits"):
            merged[name] = counts[name]
        return merged

    def stats(self) -> dict[str, int]:
        """Counters of both backends summed, plus the policy answers and the fallback counts.

        `keys` and `used_bytes` are those of the backend serving now.
        """
        memory = self._memory.stats()
        if self._up:
            try:
                self._redis_stats = dict(self._primary.stats())
            except BackendUnavailable as exc:
                self._tripped(exc)
        return self.snapshot(memory)

    def close(self) -> None:
        """Stop the probe, close the Redis client and the memory backend (idempotent).

        Calls after `close()` still go to Redis (the backend makes a new client on demand) and
        a later `close()` closes that one too. A call that fails from `close()` on (one in
        flight when its connection was closed, or an outage) is served from memory alone: the
        breaker stays closed and no probe starts.
        """
        self._closed = True
        self._stop.set()
        probe, self._probe = self._probe, None
        if probe is not None and not probe.join(BACKGROUND_STOP_TIMEOUT_SECONDS):
            _logger.warning("the Redis probe did not stop in time")
        try:
            self._primary.close()
        except Exception:  # e.g. a connection made on an event loop that is closed now
            _logger.warning("closing the Redis client failed", exc_info=True)
        finally:
            self._memory.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} serving={self.serving} breaker={self.state}>"
