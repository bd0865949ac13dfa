"""`AsyncFallbackBackend`: Redis while it answers, the in-memory backend while it does not.

docs/semantics.md ("When Redis fails") states the behaviour: the breaker, the probe, the router
`_route` with its outage rules, lock tokens, and what is dropped when Redis returns.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any, Final, Protocol

from .._asyncio_synchronization import AsyncFlag, AsyncMutex, AsyncWorker
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
from .._validate import key_arg, ms_arg, rate_limit_args, rate_limit_many_args, str_arg
from ..exceptions import BackendUnavailable
from .backend import AsyncBackend

__all__ = ["AsyncFallbackBackend", "AsyncPrimaryBackend"]

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


# What answers a command during an outage when the memory backend alone does not: the name of a
# method taking (policy, *the command's arguments).
_OUTAGE: Final = {
    "acquire_lock": "_lock_outage",
    "acquire_fenced_lock": "_fenced_lock_outage",
    "release_lock": "_token_outage",
    "extend_lock": "_token_outage",
    "rate_limit": "_rate_limit_outage",
    "rate_limit_many": "_rate_limit_many_outage",
    "publish": "_publish_outage",
    "ping": "_ping_outage",
}


class AsyncPrimaryBackend(AsyncBackend, Protocol):
    """What the fallback needs from the Redis backend beyond `AsyncBackend`."""

    @property
    def client(self) -> Any:
        """The redis-py client."""
        ...

    @property
    def maxmemory_policy(self) -> str:
        """Every primary's maxmemory-policy as last read (connect, stats), or "unknown"."""
        ...

    def counters(self) -> dict[str, int]:
        """This process's hit, lock and rate-limit counters (no I/O)."""
        ...

    async def publish(self, channel: str, data: bytes, node: Any = None) -> int:
        """PUBLISH (channel already prefixed) on `node` of a cluster, or where redis-py routes."""
        ...

    async def connect(self) -> None:
        """PING once, bounded by the connect timeout; `BackendUnavailable` when no answer."""
        ...

    async def ping(self) -> float:
        """One PING; its round-trip time in seconds."""
        ...


def _policy_answer(
    policy: str, limit: int, cost: int, window: float
) -> tuple[bool, int, float, float]:
    """A rate limit's answer under "fail_open" (allowed) or "fail_closed" (denied until the
    breaker may have closed again)."""
    if policy == FALLBACK_FAIL_OPEN:
        return True, limit - cost, 0.0, 0.0
    retry = min(window, PROBE_MAX_SECONDS)
    return False, 0, retry, retry


class AsyncFallbackBackend:
    """Redis behind a circuit breaker, the memory backend in front of every outage.

    Args:
        primary: the Redis backend (not connected yet: `connect()` or the first call does it).
        memory: the in-memory backend that serves while Redis does not answer.
        lock_fallback: "memory" or "fail_closed".
        rate_limit_fallback: "memory", "fail_closed" or "fail_open".
        required: a failed first connection raises instead of serving from memory.
        breaker: the state machine (tests inject one with short probe delays).
    """

    def __init__(
        self,
        primary: AsyncPrimaryBackend,
        memory: AsyncBackend,
        *,
        lock_fallback: str = DEFAULT_LOCK_FALLBACK,
        rate_limit_fallback: str = DEFAULT_RATE_LIMIT_FALLBACK,
        required: bool = False,
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
        self._required = required
        self.breaker = CircuitBreaker() if breaker is None else breaker
        # True while calls go to Redis: connected and the breaker closed (one attribute read).
        self._up = False
        # Recoveries so far: a call served by memory that sees it change wrote after (or while)
        # memory was emptied, and takes its key out again (see `_route`).
        self._recoveries = 0
        self._connected = False  # the first connection attempt has finished
        self._connect_mutex = AsyncMutex()
        self._closed = False
        self._stop = AsyncFlag()
        self._probe: AsyncWorker | None = None
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
        self._cause = "Redis unavailable"  # the last outage's error, for fail_closed refusals
        self._redis_stats: dict[str, int] = {}  # the last counters Redis gave

    # --- state -------------------------------------------------------------------------------

    @property
    def redis_available(self) -> bool:
        """True when the next call goes to Redis (also before the first connection attempt)."""
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
    def maxmemory_policy(self) -> str:
        """Redis's maxmemory-policy as last read (at connect and by `stats()`), or "unknown"."""
        return self._primary.maxmemory_policy

    @property
    def client(self) -> Any:
        """The redis-py client of the Redis backend (None when it cannot be built now)."""
        try:
            return self._primary.client
        except BackendUnavailable:  # a cluster client discovers its nodes when built
            return None

    async def connect(self) -> bool:
        """Connect to Redis once, bounded by the connect timeout (later calls return at once).

        Returns:
            True when Redis answered; False when memory serves (and the probe keeps trying).

        Raises:
            BackendUnavailable: Redis did not answer and `required` is set; the next call
                tries again.
        """
        if self._connected:
            return self._up
        async with self._connect_mutex:
            if self._connected or self._closed:
                return self._up
            try:
                await self._primary.connect()
            except BackendUnavailable as exc:
                if self._required:
                    raise
                self._connected = True
                self._tripped(exc, at_start=True)
                return False
            self._connected = True
            self._up = self.breaker.closed
            return self._up

    def _tripped(self, exc: BaseException, *, at_start: bool = False) -> None:
        if self._closed and not at_start:
            return  # a call cut short by close(), or made after it: memory serves only this one
        self._up = False
        self._cause = str(exc)
        if not self.breaker.trip():
            return
        with self._counts_lock:
            self._warned.clear()
        if at_start:
            _logger.error("Redis unavailable at start-up (%s); serving from memory", exc)
        else:
            _logger.error("Redis unavailable (%s); serving from memory until it answers", exc)
        if not self._closed:
            self._probe = AsyncWorker(self._probe_loop, "cachebolt-redis-probe")

    async def _probe_loop(self) -> None:
        while not await self._stop.wait(self.breaker.next_probe_delay()):
            if not self.breaker.probe_started():
                return
            try:
                await self._primary.ping()
            except BackendUnavailable as exc:
                self._cause = str(exc)
                self.breaker.probe_failed()
                continue
            except Exception:
                _logger.exception("Redis probe failed unexpectedly")
                self.breaker.probe_failed()
                continue
            await self._recovered()
            return

    async def _recovered(self) -> None:
        seconds = self.breaker.open_seconds()
        if not self.breaker.reset() or self._closed:
            return
        # Switch first, then drop: calls stop writing to memory before it is emptied. Dropping
        # first let the calls made during the drop (memory still served them) leave values that
        # a later outage then read back. A call that chose memory before the switch and writes
        # after the drop passed its key sees `_recoveries` change and removes the key itself.
        self._recoveries += 1
        self._up = True
        try:
            await self._drop_outage_data()
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

    async def _drop_outage_data(self) -> None:
        """Delete what memory holds, except held locks: the next outage starts clean."""
        cursor = 0
        while True:
            cursor, keys = await self._memory.scan(cursor, "*", 500)
            for key in keys:
                if not key.startswith(_LOCK_PREFIX):
                    await self._memory.delete(key)
            if cursor == 0:
                return

    def _count(self, *names: str) -> None:
        with self._counts_lock:
            for name in names:
                self._counts[name] += 1

    def _count_policy_answer(self, policy: str) -> None:
        allowed = policy == FALLBACK_FAIL_OPEN
        self._count("fallback_calls", "rate_limit_allowed" if allowed else "rate_limit_denied")

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

    # --- the router ----------------------------------------------------------------------------

    async def _route(self, name: str, *args: Any, policy: str | None = None) -> Any:
        """Run command `name` on Redis while it serves, else by its `_OUTAGE` rule or on memory.

        Args:
            policy: a lock or rate-limit command's outage policy for this call (None: the one
                configured).
        """
        # `_up` is False while memory serves, and before the first connection attempt (which
        # the first call makes; concurrent first calls share it).
        recoveries = self._recoveries  # before the choice: see the memory path below
        if self._up or (not self._connected and await self.connect()):
            try:
                return await getattr(self._primary, name)(*args)
            except BackendUnavailable as exc:
                self._tripped(exc)
        outage = _OUTAGE.get(name)
        if outage is not None:
            return await getattr(self, outage)(policy, *args)
        self._count("fallback_calls")
        result = await getattr(self._memory, name)(*args)
        if self._recoveries != recoveries and args and isinstance(args[0], str):
            # Redis came back during this call: memory was (or is being) emptied, and what this
            # call left at its key would be read back, stale, in the next outage.
            await self._memory.delete(args[0])
        return result

    # --- values, sets and hashes: memory serves them during an outage -------------------------

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._route("get", key)
        return value

    async def lookup(self, key: str) -> bytes | None:
        value: bytes | None = await self._route("lookup", key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._route("set", key, value, ttl)

    async def delete(self, key: str) -> bool:
        deleted: bool = await self._route("delete", key)
        return deleted

    async def exists(self, key: str) -> bool:
        found: bool = await self._route("exists", key)
        return found

    async def incrby(self, key: str, amount: int) -> int:
        number: int = await self._route("incrby", key, amount)
        return number

    async def ttl(self, key: str) -> int:
        seconds: int = await self._route("ttl", key)
        return seconds

    async def expire(self, key: str, ttl: float) -> bool:
        expiring: bool = await self._route("expire", key, ttl)
        return expiring

    async def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        # A cursor belongs to one backend: a scan that straddles a transition may miss keys.
        step: tuple[int, list[str]] = await self._route("scan", cursor, pattern, count)
        return step

    async def ping(self) -> float | None:
        """One PING when Redis serves: its round trip in seconds; None while memory serves."""
        seconds: float | None = await self._route("ping")
        return seconds

    async def del_pattern(self, pattern: str) -> int:
        deleted: int = await self._route("del_pattern", pattern)
        return deleted

    async def flush(self) -> int:
        deleted: int = await self._route("flush")
        return deleted

    async def sadd(self, key: str, *members: str) -> int:
        added: int = await self._route("sadd", key, *members)
        return added

    async def srem(self, key: str, *members: str) -> int:
        removed: int = await self._route("srem", key, *members)
        return removed

    async def sismember(self, key: str, member: str) -> bool:
        found: bool = await self._route("sismember", key, member)
        return found

    async def smembers(self, key: str) -> builtins.set[str]:
        members: builtins.set[str] = await self._route("smembers", key)
        return members

    async def scard(self, key: str) -> int:
        count: int = await self._route("scard", key)
        return count

    async def hset(self, key: str, field: str, value: str) -> int:
        added: int = await self._route("hset", key, field, value)
        return added

    async def hget(self, key: str, field: str) -> str | None:
        text: str | None = await self._route("hget", key, field)
        return text

    async def hgetall(self, key: str) -> dict[str, str]:
        fields: dict[str, str] = await self._route("hgetall", key)
        return fields

    async def hdel(self, key: str, *fields: str) -> int:
        removed: int = await self._route("hdel", key, *fields)
        return removed

    # --- locks -------------------------------------------------------------------------------

    async def acquire_lock(self, key: str, ttl_ms: int, policy: str | None = None) -> str | None:
        """`acquire_lock` of the backend serving; `policy` overrides the lock outage policy.

        Raises:
            BackendUnavailable: Redis is down and the policy is "fail_closed".
        """
        token: str | None = await self._route("acquire_lock", key, ttl_ms, policy=policy)
        return token

    async def acquire_fenced_lock(
        self, key: str, ttl_ms: int, policy: str | None = None
    ) -> tuple[str, int] | None:
        """`acquire_fenced_lock` of the backend serving; `policy` as for `acquire_lock`."""
        taken: tuple[str, int] | None = await self._route(
            "acquire_fenced_lock", key, ttl_ms, policy=policy
        )
        return taken

    async def release_lock(self, key: str, token: str) -> bool:
        if isinstance(token, str) and token.startswith(MEMORY_TOKEN_TAG):
            return await self._memory.release_lock(key, token[len(MEMORY_TOKEN_TAG) :])
        released: bool = await self._route("release_lock", key, token)
        return released

    async def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        if isinstance(token, str) and token.startswith(MEMORY_TOKEN_TAG):
            raw = token[len(MEMORY_TOKEN_TAG) :]
            return await self._memory.extend_lock(key, raw, ttl_ms)
        extended: bool = await self._route("extend_lock", key, token, ttl_ms)
        return extended

    async def _lock_outage(self, policy: str | None, key: str, ttl_ms: int) -> str | None:
        taken = await self._memory_lock(key, ttl_ms, policy, fenced=False)
        return None if taken is None else taken[0]

    async def _fenced_lock_outage(
        self, policy: str | None, key: str, ttl_ms: int
    ) -> tuple[str, int] | None:
        return await self._memory_lock(key, ttl_ms, policy, fenced=True)

    async def _memory_lock(
        self, key: str, ttl_ms: int, policy: str | None, *, fenced: bool
    ) -> tuple[str, int] | None:
        """A lock while Redis is down, by the lock policy: (token tagged "mem-", fence) or None.

        `fenced=False` gives fence 0; a memory fence is comparable only within this process.

        Raises:
            BackendUnavailable: the policy is "fail_closed"; the message names the outage.
        """
        if (self._lock_fallback if policy is None else policy) == FALLBACK_FAIL_CLOSED:
            # The arguments the memory store would have refused (`_validate` words them alike).
            key_arg(key, "lock_key")
            ms_arg(ttl_ms)
            self._count("fallback_calls", "lock_contended")
            raise BackendUnavailable(
                f"lock {key!r} not taken (fallback='fail_closed'): {self._cause}"
            )
        if fenced:
            taken = await self._memory.acquire_fenced_lock(key, ttl_ms)
        else:
            token = await self._memory.acquire_lock(key, ttl_ms)
            taken = None if token is None else (token, 0)
        self._count("fallback_calls")
        if taken is None:
            return None
        self._count("fallback_locks")
        self._warn_local("locks")
        return MEMORY_TOKEN_TAG + taken[0], taken[1]

    async def _token_outage(self, _policy: str | None, key: str, token: str, *ttl_ms: int) -> bool:
        # A Redis token while Redis is down: it cannot be released or extended; it ends by its TTL.
        # `ttl_ms`: extend_lock's (release_lock has none).
        key_arg(key, "lock_key")
        str_arg(token, "token")
        for ms in ttl_ms:
            ms_arg(ms)
        self._count("fallback_calls")
        return False

    # --- rate limits -------------------------------------------------------------------------

    async def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int = 1,
        algorithm: str = "sliding_log",
        policy: str | None = None,
    ) -> tuple[bool, int, float, float]:
        """`rate_limit` of the backend serving; `policy` overrides the rate-limit outage policy."""
        answer: tuple[bool, int, float, float] = await self._route(
            "rate_limit", key, limit, window, cost, algorithm, policy=policy
        )
        return answer

    async def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> list[tuple[bool, int, float, float]]:
        answers: list[tuple[bool, int, float, float]] = await self._route(
            "rate_limit_many", keys, limits, windows, cost, algorithm
        )
        return answers

    async def _rate_limit_outage(
        self,
        policy: str | None,
        key: str,
        limit: int,
        window: float,
        cost: int,
        algorithm: str,
    ) -> tuple[bool, int, float, float]:
        policy = self._rate_limit_fallback if policy is None else policy
        if policy != FALLBACK_MEMORY:
            _, checked_limit, window_ms, checked_cost, _ = rate_limit_args(
                key, limit, window, cost, algorithm
            )
            if checked_cost <= checked_limit:  # a cost above the limit: every policy denies it
                self._count_policy_answer(policy)
                return _policy_answer(policy, checked_limit, checked_cost, window_ms / 1000)
        result = await self._memory.rate_limit(key, limit, window, cost, algorithm)
        self._count("fallback_calls", "fallback_rate_limits")
        self._warn_local("rate limits")
        return result

    async def _rate_limit_many_outage(
        self,
        _policy: str | None,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int,
        algorithm: str,
    ) -> list[tuple[bool, int, float, float]]:
        policy = self._rate_limit_fallback
        if policy != FALLBACK_MEMORY:
            # The policies of `rate_limit`, for the call as a whole.
            _, checked_limits, windows_ms, cost = rate_limit_many_args(
                keys, limits, windows, cost, algorithm
            )
            if all(cost <= limit for limit in checked_limits):
                self._count_policy_answer(policy)
                return [
                    _policy_answer(policy, limit, cost, ms / 1000)
                    for limit, ms in zip(checked_limits, windows_ms, strict=True)
                ]
        results = await self._memory.rate_limit_many(keys, limits, windows, cost, algorithm)
        self._count("fallback_calls", "fallback_rate_limits")
        self._warn_local("rate limits")
        return results

    # --- pub/sub -----------------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes, node: Any = None) -> int | None:
        """PUBLISH on Redis (channel already prefixed): the receivers Redis counted.

        Args:
            node: cluster mode: the node to publish on (the service's listener node); None routes
                by the channel's slot.

        Returns:
            None while Redis is down: the caller delivers in-process instead.
        """
        reached: int | None = await self._route("publish", channel, data, node)
        return reached

    async def _publish_outage(self, _policy: str | None, *_args: Any) -> None:
        self._count("fallback_calls")

    async def _ping_outage(self, _policy: str | None) -> None:
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

    async def stats(self) -> dict[str, int]:
        """Counters of both backends summed, plus the policy answers and the fallback counts.

        `keys` and `used_bytes` are those of the backend serving now.
        """
        memory = await self._memory.stats()
        if self._up:
            try:
                self._redis_stats = dict(await self._primary.stats())
            except BackendUnavailable as exc:
                self._tripped(exc)
        return self.snapshot(memory)

    async def aclose(self) -> None:
        """Stop the probe, close the Redis client and the memory backend (idempotent).

        Later calls still go to Redis on a new client, and a failure is then served from memory
        alone: the breaker stays closed and no probe starts.
        """
        self._closed = True
        self._stop.set()
        probe, self._probe = self._probe, None
        if probe is not None and not await probe.join(BACKGROUND_STOP_TIMEOUT_SECONDS):
            _logger.warning("the Redis probe did not stop in time")
        try:
            await self._primary.aclose()
        except Exception:  # e.g. a connection made on an event loop that is closed now
            _logger.warning("closing the Redis client failed", exc_info=True)
        finally:
            await self._memory.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} serving={self.serving} breaker={self.state}>"
