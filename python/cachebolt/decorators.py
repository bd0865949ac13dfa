"""Decorators of both services: `cached`, `rate_limited`, `with_lock`.

Used as service methods (`@cache.cached(ttl=60, key="user:{user_id}")`). Key templates are
`str.format` templates over the decorated function's bound arguments, defaults applied, each value
escaped by `escape_key_part` (`"acme:q3"` becomes `acme%3Aq3`: no value reaches another part of the
key or acts as a glob wildcard); a template naming an unknown argument fails when decorating.
Plain and `async def` functions both work: the blocking service gives an `async def` function an
async wrapper; the asyncio service refuses plain functions (its calls must be awaited), with a
`TypeError` when decorating.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypeVar, cast

from ._codec import OPTIONS, SORT_KEYS, first_use, round_trip
from ._constants import (
    LOCK_FALLBACK_POLICIES,
    ON_LOST_POLICIES,
    ON_LOST_RAISE,
    ON_LOST_WARN,
    RATE_LIMIT_FALLBACK_POLICIES,
)
from ._redact import get_logger
from ._synchronization import Backoff, next_lock_wait
from ._templates import KeyTemplate
from ._validate import (
    algorithm_arg,
    choice_arg,
    count_arg,
    ms_arg,
    optional_seconds_arg,
    positive_arg,
    seconds_arg,
    wait_seconds_arg,
)
from .exceptions import BackendUnavailable, RateLimitExceeded, SerializationError

if TYPE_CHECKING:
    from ._async.service import AsyncCacheService
    from ._sync.service import CacheService

    AnyService: TypeAlias = CacheService | AsyncCacheService

__all__ = ["cached", "rate_limited", "with_lock"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
Decorator = Callable[[Callable[_P, _R]], Callable[_P, _R]]
_logger = get_logger()
_MISSING: Any = object()
_dumps = first_use(globals(), "_dumps", "dumps")


def _qualified_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


class _KeyTemplate:
    """A `KeyTemplate` over a function's arguments, checked once when decorating."""

    __slots__ = ("_signature", "_template")

    def __init__(self, fn: Callable[..., Any], template: str, what: str) -> None:
        self._template = KeyTemplate(template, what)
        self._signature = inspect.signature(fn)
        params = self._signature.parameters
        for name in self._template.names:
            if name not in params:
                known = ", ".join(params) or "no arguments"
                reason = "positional fields are not allowed" if not name or name.isdigit() else ""
                raise ValueError(
                    f"{what} {template!r} of {_qualified_name(fn)} names {{{name}}}, which is "
                    f"not one of its arguments ({known})" + (f"; {reason}" if reason else "")
                )

    def format(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self._template.format(bound.arguments)


class _DerivedKey:
    """`module.qualname:<hash of the JSON of the bound arguments>`, stable across processes."""

    __slots__ = ("_prefix", "_sha256", "_signature")

    def __init__(self, fn: Callable[..., Any]) -> None:
        # hashlib loads OpenSSL's libcrypto: imported by the first derived key, not with the module.
        from hashlib import sha256

        self._sha256 = sha256
        self._signature = inspect.signature(fn)
        self._prefix = _qualified_name(fn)

    def format(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        try:
            data = _dumps(bound.arguments, option=OPTIONS | SORT_KEYS)
        except TypeError as exc:
            raise SerializationError(
                f"cannot derive a cache key for {self._prefix} from its arguments ({exc}); "
                "pass key=... with a template",
                key=self._prefix,
            ) from exc
        # 128 bits of SHA-256 keep the key short whatever the arguments; the prefix keeps
        # del_pattern("module.function:*") working.
        return f"{self._prefix}:{self._sha256(data).hexdigest()[:32]}"


KeyOf = Callable[[tuple[Any, ...], dict[str, Any]], str]
# run(service, key, fn, args, kwargs): a decorator's work around the call fn(*args, **kwargs).
Run = Callable[[Any, str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


def _decorator(
    service: AnyService,
    name: str,
    key_of: Callable[[Callable[..., Any]], KeyOf],
    run: Run,
    arun: Run,
) -> Decorator[..., Any]:
    """A decorator whose wrapper the decorated function's flavour picks, when decorating.

    This is the one place that tells the flavours apart: a plain function gets `_plain_wrapper`
    over `run` (refused by the asyncio service, whose calls must be awaited), an `async def`
    function `_coroutine_wrapper` over `arun`, which awaits the asyncio service, or the blocking
    one through `_BlockingAsAsync`.

    Args:
        service: the decorator's service.
        name: the decorator's name, for the refusal's message.
        key_of: makes the key function of a decorated function (its template checked now).
        run: `run(service, key, fn, args, kwargs)` does the decorator's work around the call.
        arun: the same, a coroutine function.

    Raises:
        TypeError: (when decorating) a plain function for the asyncio service.
    """
    is_async_service = inspect.iscoroutinefunction(service.get)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        coroutine = inspect.iscoroutinefunction(fn)
        if is_async_service and not coroutine:
            raise TypeError(
                f"AsyncCacheService.{name} needs an async def function, and "
                f"{_qualified_name(fn)} is a plain function; decorate it with a CacheService "
                "instead"
            )
        key = key_of(fn)
        if not coroutine:
            return _plain_wrapper(fn, key, run, service)
        awaited = service if is_async_service else _BlockingAsAsync(cast("CacheService", service))
        return _coroutine_wrapper(fn, key, arun, awaited)

    return decorate


def _plain_wrapper(
    fn: Callable[..., Any], key: KeyOf, run: Run, service: Any
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return run(service, key(args, kwargs), fn, args, kwargs)

    return functools.wraps(fn)(wrapper)


def _coroutine_wrapper(
    fn: Callable[..., Any], key: KeyOf, arun: Run, service: Any
) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await arun(service, key(args, kwargs), fn, args, kwargs)

    return functools.wraps(fn)(wrapper)


class _BlockingAsAsync:
    """The blocking service's calls of the decorators, awaitable, for an `async def` function.

    Its calls block the event loop as the blocking service does, except the wait for a held
    lock, which sleeps on the loop. `get_or_set` shares no awaited computation between tasks:
    each concurrent miss computes, and the last store wins.
    """

    __slots__ = ("_service",)

    def __init__(self, service: CacheService) -> None:
        self._service = service

    async def get_or_set(self, key: str, ttl: float | None, call: Callable[[], Any]) -> Any:
        """`get_or_set` with `call()` awaited."""
        value = self._service.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = await call()
        self._service.set(key, value, ttl)
        return round_trip(key, value)

    async def hit_rate_limit(self, key: str, *args: Any, **kwargs: Any) -> Any:
        """`hit_rate_limit`."""
        return self._service.hit_rate_limit(key, *args, **kwargs)

    def lock(
        self, name: str, ttl_ms: int, *, wait_seconds: float, fallback: str | None, on_lost: str
    ) -> _PolledLock:
        """`lock()` with its waits on the event loop (`asyncio.sleep`)."""
        return _PolledLock(self._service, name, ttl_ms, wait_seconds, fallback, on_lost)


class _PolledLock:
    """The blocking service's `lock()` as an async context manager that waits on the loop."""

    __slots__ = ("_fallback", "_name", "_on_lost", "_service", "_token", "_ttl_ms", "_wait")

    def __init__(
        self,
        service: CacheService,
        name: str,
        ttl_ms: int,
        wait: float,
        fallback: str | None,
        on_lost: str,
    ) -> None:
        self._service, self._name, self._ttl_ms = service, name, ttl_ms
        self._wait, self._fallback, self._on_lost = wait, fallback, on_lost

    async def __aenter__(self) -> str:
        """Take the lock as `lock()` does (`_acquire_waiting`), sleeping on the event loop."""
        # Imported here, where an event loop runs: a blocking-only program never loads asyncio.
        import asyncio

        backoff = Backoff(self._wait)
        while True:
            refused: BackendUnavailable | None = None
            try:
                taken = self._service._take_lock(self._name, self._ttl_ms, self._fallback, False)
            except BackendUnavailable as exc:
                taken, refused = None, exc
            if taken is not None:
                self._token: str = taken.token
                return self._token
            await asyncio.sleep(next_lock_wait(backoff, self._name, self._wait, refused))

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # The body's own error goes on; a lost lock is then only reported beside it.
        on_lost = self._on_lost if exc_type is None else ON_LOST_WARN
        self._service._release_held(self._name, self._ttl_ms, self._token, on_lost)


def cached(
    service: AnyService, *, ttl: float | None, key: str | None = None
) -> Decorator[..., Any]:
    """Cache a function's result with `get_or_set` under a key built from its arguments.

    Args:
        service: the service that stores the results.
        ttl: seconds a result lives (None: no expiry).
        key: a `str.format` template over the arguments, e.g. "feed:user:{user_id}"; None
            derives `module.qualname:<hash of the JSON of the arguments>`.

    Returns:
        A decorator; the wrapped function returns the JSON round trip of the result, like `get`.

    Raises:
        ValueError: the template names an unknown argument, or `ttl` is invalid.
    """
    optional_seconds_arg(ttl, "ttl")

    def key_of(fn: Callable[..., Any]) -> KeyOf:
        return (_DerivedKey(fn) if key is None else _KeyTemplate(fn, key, "key template")).format

    def run(svc: Any, k: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        return svc.get_or_set(k, ttl, lambda: fn(*args, **kwargs))  # awaitable when async

    return _decorator(service, "cached", key_of, run, run)


def rate_limited(
    service: AnyService,
    *,
    limit: int,
    window_seconds: float,
    key: str | None = None,
    algorithm: str = "sliding_log",
    cost: int = 1,
    fallback: str | None = None,
) -> Decorator[..., Any]:
    """Count each call against a rate limit; a denied call raises instead of running.

    Args:
        service: the service that keeps the limit state.
        limit: calls allowed per window, >= 1.
        window_seconds: the window in seconds.
        key: a `str.format` template over the arguments, e.g. "user:{user_id}:POST:/orders";
            None limits all calls of the function together (key `module.qualname`).
        algorithm: "sliding_log" (exact), "fixed_window", "sliding_counter" or "gcra".
        cost: hits each call counts for.
        fallback: what a call does while Redis is down, instead of `CACHE_RATE_LIMIT_FALLBACK`:
            "memory", "fail_closed" (denied) or "fail_open" (allowed).

    Returns:
        A decorator; the wrapped function raises `RateLimitExceeded` (with `.retry_after` and
        `.result`) when the limit denies the call, which then consumes nothing.
    """
    positive_arg(limit, "limit")
    seconds_arg(window_seconds, "window_seconds")
    algorithm_arg(algorithm)
    count_arg(cost, "cost")
    if fallback is not None:
        choice_arg("fallback", fallback, RATE_LIMIT_FALLBACK_POLICIES)

    def key_of(fn: Callable[..., Any]) -> KeyOf:
        if key is not None:
            return _KeyTemplate(fn, key, "key template").format
        fixed_key = _qualified_name(fn)
        return lambda args, kwargs: fixed_key

    def run(svc: Any, k: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        result = svc.hit_rate_limit(
            k, limit, window_seconds, cost=cost, algorithm=algorithm, fallback=fallback
        )
        if not result:
            raise RateLimitExceeded(result, key=k)
        return fn(*args, **kwargs)

    async def arun(svc: Any, k: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        result = await svc.hit_rate_limit(
            k, limit, window_seconds, cost=cost, algorithm=algorithm, fallback=fallback
        )
        if not result:
            raise RateLimitExceeded(result, key=k)
        return await fn(*args, **kwargs)

    return _decorator(service, "rate_limited", key_of, run, arun)


def with_lock(
    service: AnyService,
    name_template: str,
    *,
    ttl_ms: int,
    wait_seconds: float = 0,
    fallback: str | None = None,
    on_lost: str = ON_LOST_RAISE,
) -> Decorator[..., Any]:
    """Run each call while holding the lock `lock:<name>`, released when the call returns.

    Args:
        service: the service that holds the locks.
        name_template: a `str.format` template over the arguments, e.g. "order:create:{user_id}".
        ttl_ms: lock TTL in milliseconds (the call should finish well within it).
        wait_seconds: how long to wait for a held lock before giving up.
        fallback: what taking the lock does while Redis is down, instead of
            `CACHE_LOCK_FALLBACK`: "memory" or "fail_closed".
        on_lost: "raise" (`LockLost`) or "warn" when the release finds the lock expired or
            taken by another holder (see `lock()`).

    Returns:
        A decorator; the wrapped function raises `LockNotAcquired` when the lock stays held,
        `BackendUnavailable` when it is refused under "fail_closed" while Redis is down, and
        `LockLost` as `on_lost` says.
    """
    ms_arg(ttl_ms)
    wait = wait_seconds_arg(wait_seconds)
    if fallback is not None:
        choice_arg("fallback", fallback, LOCK_FALLBACK_POLICIES)
    choice_arg("on_lost", on_lost, ON_LOST_POLICIES)

    def key_of(fn: Callable[..., Any]) -> KeyOf:
        return _KeyTemplate(fn, name_template, "lock name template").format

    def lock(svc: Any, name: str) -> Any:
        return svc.lock(name, ttl_ms, wait_seconds=wait, fallback=fallback, on_lost=on_lost)

    def run(svc: Any, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        with lock(svc, name):
            return fn(*args, **kwargs)

    async def arun(svc: Any, name: str, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        async with lock(svc, name):
            return await fn(*args, **kwargs)

    return _decorator(service, "with_lock", key_of, run, arun)
