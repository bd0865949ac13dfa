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
    check_algorithm,
    check_choice,
    check_cost,
    check_limit,
    check_optional_ttl,
    check_ttl,
    check_ttl_ms,
    check_wait_seconds,
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


def _is_async_service(service: AnyService) -> bool:
    return inspect.iscoroutinefunction(service.get)


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


def _refuse_sync(service: AnyService, fn: Callable[..., Any], decorator: str) -> None:
    if _is_async_service(service) and not inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"AsyncCacheService.{decorator} needs an async def function, and "
            f"{_qualified_name(fn)} is a plain function; decorate it with a CacheService instead"
        )


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
    check_optional_ttl(ttl)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _refuse_sync(service, fn, "cached")
        keys = _DerivedKey(fn) if key is None else _KeyTemplate(fn, key, "key template")
        if _is_async_service(service):
            aservice = cast("AsyncCacheService", service)

            async def async_cached(*args: Any, **kwargs: Any) -> Any:
                return await aservice.get_or_set(
                    keys.format(args, kwargs), ttl, lambda: fn(*args, **kwargs)
                )

            return functools.wraps(fn)(async_cached)
        sservice = cast("CacheService", service)
        if inspect.iscoroutinefunction(fn):
            # The blocking service cannot share an awaited computation between tasks; each
            # concurrent miss computes, and the last store wins.
            async def cached_coroutine(*args: Any, **kwargs: Any) -> Any:
                cache_key = keys.format(args, kwargs)
                value = sservice.get(cache_key, _MISSING)
                if value is not _MISSING:
                    return value
                value = await fn(*args, **kwargs)
                sservice.set(cache_key, value, ttl)
                return round_trip(cache_key, value)

            return functools.wraps(fn)(cached_coroutine)

        def cached_call(*args: Any, **kwargs: Any) -> Any:
            return sservice.get_or_set(keys.format(args, kwargs), ttl, lambda: fn(*args, **kwargs))

        return functools.wraps(fn)(cached_call)

    return decorate


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
    check_limit(limit)
    check_ttl(window_seconds, "window_seconds")
    check_algorithm(algorithm)
    check_cost(cost)
    if fallback is not None:
        check_choice("fallback", fallback, RATE_LIMIT_FALLBACK_POLICIES)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _refuse_sync(service, fn, "rate_limited")
        template = _KeyTemplate(fn, key, "key template") if key is not None else None
        fixed_key = _qualified_name(fn)

        def limit_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            return fixed_key if template is None else template.format(args, kwargs)

        if _is_async_service(service):
            aservice = cast("AsyncCacheService", service)

            async def async_limited(*args: Any, **kwargs: Any) -> Any:
                k = limit_key(args, kwargs)
                result = await aservice.hit_rate_limit(
                    k, limit, window_seconds, cost=cost, algorithm=algorithm, fallback=fallback
                )
                if not result:
                    raise RateLimitExceeded(result, key=k)
                return await fn(*args, **kwargs)

            return functools.wraps(fn)(async_limited)
        sservice = cast("CacheService", service)

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            k = limit_key(args, kwargs)
            result = sservice.hit_rate_limit(
                k, limit, window_seconds, cost=cost, algorithm=algorithm, fallback=fallback
            )
            if not result:
                raise RateLimitExceeded(result, key=k)

        if inspect.iscoroutinefunction(fn):

            async def limited_coroutine(*args: Any, **kwargs: Any) -> Any:
                check(args, kwargs)
                return await fn(*args, **kwargs)

            return functools.wraps(fn)(limited_coroutine)

        def limited_call(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return fn(*args, **kwargs)

        return functools.wraps(fn)(limited_call)

    return decorate


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
    check_ttl_ms(ttl_ms)
    wait = check_wait_seconds(wait_seconds)
    if fallback is not None:
        check_choice("fallback", fallback, LOCK_FALLBACK_POLICIES)
    check_choice("on_lost", on_lost, ON_LOST_POLICIES)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _refuse_sync(service, fn, "with_lock")
        names = _KeyTemplate(fn, name_template, "lock name template")
        if _is_async_service(service):
            aservice = cast("AsyncCacheService", service)

            async def async_locked(*args: Any, **kwargs: Any) -> Any:
                name = names.format(args, kwargs)
                async with aservice.lock(
                    name, ttl_ms, wait_seconds=wait, fallback=fallback, on_lost=on_lost
                ):
                    return await fn(*args, **kwargs)

            return functools.wraps(fn)(async_locked)
        sservice = cast("CacheService", service)
        if inspect.iscoroutinefunction(fn):
            # Wait with asyncio.sleep, not inside the blocking lock(), to keep the loop running.
            async def locked_coroutine(*args: Any, **kwargs: Any) -> Any:
                name = names.format(args, kwargs)
                token = await _acquire_polling(sservice, name, ttl_ms, wait, fallback)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException:
                    sservice._release_held(name, ttl_ms, token, ON_LOST_WARN)
                    raise
                sservice._release_held(name, ttl_ms, token, on_lost)
                return result

            return functools.wraps(fn)(locked_coroutine)

        def locked_call(*args: Any, **kwargs: Any) -> Any:
            name = names.format(args, kwargs)
            with sservice.lock(name, ttl_ms, wait_seconds=wait, fallback=fallback, on_lost=on_lost):
                return fn(*args, **kwargs)

        return functools.wraps(fn)(locked_call)

    return decorate


async def _acquire_polling(
    service: CacheService, name: str, ttl_ms: int, wait: float, fallback: str | None
) -> str:
    """`lock()`'s acquisition (`_acquire_waiting`) with the waits on the event loop."""
    # Imported here, where an event loop runs, so that a blocking-only program never loads asyncio.
    import asyncio

    backoff = Backoff(wait)
    while True:
        refused: BackendUnavailable | None = None
        try:
            taken = service._take_lock(name, ttl_ms, fallback, False)
        except BackendUnavailable as exc:
            taken, refused = None, exc
        if taken is not None:
            return taken.token
        await asyncio.sleep(next_lock_wait(backoff, name, wait, refused))
