"""`cached`, `rate_limited` and `with_lock` on both services, plain and async functions."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from cachebolt import (
    AsyncCacheService,
    CacheService,
    LockLost,
    LockNotAcquired,
    RateLimitExceeded,
    RateLimitResult,
    SerializationError,
    escape_key_part,
)
from cachebolt._core import MemoryStore
from conftest import Clock
from hypothesis import given
from hypothesis import strategies as st


def test_cached_key_template_binds_defaults(cache: Any, store: MemoryStore) -> None:
    calls: list[tuple[int, int]] = []

    @cache.cached(ttl=300, key="feed:user:{user_id}:page:{page}")
    def feed(user_id: int, page: int = 1) -> list[dict[str, Any]]:
        """The feed."""
        calls.append((user_id, page))
        return [{"user": user_id, "page": page, "t": (1,)}]

    assert feed(7) == [{"user": 7, "page": 1, "t": [1]}]
    assert feed(7, page=1) == [{"user": 7, "page": 1, "t": [1]}]
    assert feed(user_id=7) == [{"user": 7, "page": 1, "t": [1]}]
    assert feed(7, 2) == [{"user": 7, "page": 2, "t": [1]}]
    assert calls == [(7, 1), (7, 2)]
    assert sorted(store.keys()) == ["feed:user:7:page:1", "feed:user:7:page:2"]
    assert cache.ttl("feed:user:7:page:1") == 300
    assert feed.__name__ == "feed" and feed.__doc__ == "The feed."


def test_cached_expires(cache: Any, clock: Clock) -> None:
    calls: list[int] = []

    @cache.cached(ttl=10, key="v:{x}")
    def value(x: int) -> int:
        calls.append(x)
        return x * 2

    assert value(2) == 4
    clock.advance(10)
    assert value(2) == 4
    assert calls == [2, 2]


def test_cached_derived_key_is_stable(cache: Any, store: MemoryStore) -> None:
    calls: list[Any] = []

    @cache.cached(ttl=60)
    def lookup(a: int, b: str = "x", *rest: int, **options: Any) -> list[Any]:
        calls.append(a)
        return [a, b, rest, options]

    assert lookup(1) == [1, "x", [], {}]
    assert lookup(a=1, b="x") == [1, "x", [], {}]
    assert lookup(2, "y", 3, flag=True) == [2, "y", [3], {"flag": True}]
    assert calls == [1, 2]
    keys = store.keys()
    prefix = f"{__name__}.test_cached_derived_key_is_stable.<locals>.lookup:"
    assert len(keys) == 2
    assert all(re.fullmatch(re.escape(prefix) + "[0-9a-f]{32}", k) for k in keys)
    assert cache.del_pattern(prefix.replace("[", "\\[") + "*") == 2


def test_cached_derived_key_needs_json_arguments(cache: Any) -> None:
    @cache.cached(ttl=60)
    def fn(thing: object) -> int:
        return 1

    with pytest.raises(SerializationError, match="pass key="):
        fn(object())


@pytest.mark.parametrize(
    "template", ["user:{usr}", "user:{}", "user:{0}", "x:{user_id.id}:{nope[0]}"]
)
def test_unknown_template_argument_fails_when_decorating(cache: Any, template: str) -> None:
    def fn(user_id: int) -> int:
        return user_id

    for decorator in (
        cache.cached(ttl=60, key=template),
        cache.rate_limited(limit=1, window_seconds=60, key=template),
        cache.with_lock(template, ttl_ms=1000),
    ):
        with pytest.raises(ValueError, match="not one of its arguments"):
            decorator(fn)


def test_malformed_template_fails_when_decorating(cache: Any) -> None:
    with pytest.raises(ValueError, match="not a valid format string"):
        cache.cached(ttl=60, key="user:{user_id")(lambda user_id: 1)


def test_bad_decorator_arguments_fail_at_once(cache: Any) -> None:
    with pytest.raises(ValueError):
        cache.cached(ttl=0)
    with pytest.raises(ValueError):
        cache.rate_limited(limit=0, window_seconds=1)
    with pytest.raises(ValueError):
        cache.rate_limited(limit=1, window_seconds=1, algorithm="leaky")
    with pytest.raises(ValueError):
        cache.with_lock("x", ttl_ms=0)
    with pytest.raises(ValueError):
        cache.with_lock("x", ttl_ms=10, wait_seconds=-1)


@pytest.mark.memory_only(
    reason="moves the rate-limit clock; Redis scripts read the server TIME (test_realtime.py)"
)
def test_rate_limited(cache: Any, clock: Clock) -> None:
    calls: list[int] = []

    @cache.rate_limited(limit=2, window_seconds=3600, key="user:{user_id}:POST:/orders")
    def create_order(user_id: int, dto: dict[str, Any]) -> dict[str, Any]:
        calls.append(user_id)
        return {"user": user_id, **dto}

    assert create_order(7, {"item": 1}) == {"user": 7, "item": 1}
    assert create_order(7, {"item": 2}) == {"user": 7, "item": 2}
    clock.advance(600)
    with pytest.raises(RateLimitExceeded) as info:
        create_order(7, {"item": 3})
    assert calls == [7, 7]  # a denied call does not run
    assert info.value.retry_after == pytest.approx(3000.0)
    assert isinstance(info.value.result, RateLimitResult) and not info.value.result
    assert info.value.key == "user:7:POST:/orders"
    assert create_order(8, {}) == {"user": 8}  # another user has their own limit
    assert cache.stats()["rate_limit_denied"] == 1


def test_rate_limited_without_key_limits_the_function(cache: Any) -> None:
    @cache.rate_limited(limit=1, window_seconds=60, cost=1, algorithm="fixed_window")
    def ping(n: int) -> int:
        return n

    assert ping(1) == 1
    with pytest.raises(RateLimitExceeded):
        ping(2)


def test_with_lock(cache: Any, store: MemoryStore) -> None:
    seen: list[bool] = []

    @cache.with_lock("order:create:{user_id}", ttl_ms=10_000)
    def create(user_id: int) -> str:
        # The store directly: a function decorated on the async service runs on its loop.
        seen.append(store.exists(f"lock:order:create:{user_id}"))
        return "created"

    assert create(1) == "created"
    assert seen == [True]
    assert store.keys() == []
    token = cache.acquire_lock("order:create:1", 10_000)
    with pytest.raises(LockNotAcquired):
        create(1)
    assert seen == [True]
    assert create(2) == "created"
    assert cache.release_lock("order:create:1", token) is True


def test_with_lock_releases_on_exception(cache: Any) -> None:
    @cache.with_lock("job:{name}", ttl_ms=10_000)
    def job(name: str) -> None:
        raise KeyError(name)

    with pytest.raises(KeyError):
        job("a")
    assert cache.acquire_lock("job:a", 1000) is not None


def test_stacked_decorators(cache: Any) -> None:
    @cache.rate_limited(limit=2, window_seconds=3600, key="user:{user_id}")
    @cache.with_lock("order:{user_id}", ttl_ms=10_000)
    def create_order(user_id: int, dto: dict[str, Any]) -> dict[str, Any]:
        return {"user": user_id, **dto}

    create_order(7, {"item": 1})
    create_order(7, {"item": 2})
    with pytest.raises(RateLimitExceeded):
        create_order(7, {"item": 3})


# --- templated values are escaped --------------------------------------------------------------


def test_cached_template_values_cannot_reach_another_tenant(cache: Any, store: MemoryStore) -> None:
    """Tenant `acme:q3` asking `payroll` used to read tenant acme's cached `q3:payroll`."""
    calls: list[tuple[str, str]] = []

    @cache.cached(ttl=300, key="search:{tenant}:{query}")
    def search(tenant: str, query: str) -> list[str]:
        calls.append((tenant, query))
        return [f"{tenant} / {query}"]

    assert search("acme", "q3:payroll") == ["acme / q3:payroll"]
    assert search("acme:q3", "payroll") == ["acme:q3 / payroll"]
    assert calls == [("acme", "q3:payroll"), ("acme:q3", "payroll")]
    assert sorted(store.keys()) == ["search:acme%3Aq3:payroll", "search:acme:q3%3Apayroll"]


def test_glob_characters_in_values_are_never_wildcards(cache: Any, store: MemoryStore) -> None:
    """A tenant named `*` (or `a?`, `[a]`, `\\`) gets a key that a pattern built from its
    escaped name matches alone: deleting its entries leaves every other tenant's."""

    @cache.cached(ttl=300, key="t:{tenant}:{page}")
    def page(tenant: str, page: int) -> str:
        return tenant

    tenants = ["*", "a?", "[a]", "a", "ab", "\\", "x\n*", "100%", "%2A"]
    for tenant in tenants:
        page(tenant, 1)
    keys = store.keys()
    assert len(keys) == len(tenants)
    assert not any(ch in key for key in keys for ch in "*?[]\\\n")
    assert cache.del_pattern("t:" + escape_key_part("*") + ":*") == 1
    assert cache.del_pattern("t:" + escape_key_part("a?") + ":*") == 1
    assert len(store.keys()) == len(tenants) - 2 and cache.get("t:a:1") == "a"


def test_lock_and_limit_templates_escape_values(cache: Any) -> None:
    @cache.rate_limited(limit=1, window_seconds=3600, key="export:{tenant}:{kind}")
    @cache.with_lock("export:{tenant}:{kind}", ttl_ms=10_000)
    def export(tenant: str, kind: str) -> str:
        return f"{tenant}/{kind}"

    assert export("acme", "q3:csv") == "acme/q3:csv"
    assert export("acme:q3", "csv") == "acme:q3/csv"  # its own limit, not acme's
    with pytest.raises(RateLimitExceeded):
        export("acme:q3", "csv")
    token = cache.acquire_lock("export:acme%3Aq3:csv", 10_000)  # the lock it took, escaped
    assert token is not None and cache.release_lock("export:acme%3Aq3:csv", token) is True


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("42", "42"),
        ("alice@example.com", "alice@example.com"),
        ("Ünïcode name", "Ünïcode name"),
        ("acme:q3", "acme%3Aq3"),
        ("100%", "100%25"),
        ("*?[]\\", "%2A%3F%5B%5D%5C"),
        ("a\r\nb\x00\x7f\x85", "a%0D%0Ab%00%7F%85"),
    ],
)
def test_escape_key_part(value: str, escaped: str) -> None:
    assert escape_key_part(value) == escaped


@given(st.text(), st.text(), st.text(), st.text())
def test_escaped_parts_join_without_collisions(a: str, b: str, c: str, d: str) -> None:
    joined = escape_key_part(a) + ":" + escape_key_part(b)
    assert not set("*?[]\\").intersection(joined)
    if (a, b) != (c, d):
        assert joined != escape_key_part(c) + ":" + escape_key_part(d)


def test_escape_key_part_refuses_a_non_str() -> None:
    with pytest.raises(TypeError, match="value must be a str, not int"):
        escape_key_part(1)  # type: ignore[arg-type]


# --- the blocking service on async functions, the asyncio service on both ----------------------


async def test_sync_service_gives_async_functions_async_wrappers(sync_cache: CacheService) -> None:
    calls: list[int] = []

    @sync_cache.cached(ttl=60, key="v:{x}")
    async def value(x: int) -> tuple[int, int]:
        calls.append(x)
        await asyncio.sleep(0)
        return (x, x)

    @sync_cache.rate_limited(limit=1, window_seconds=60, key="r")
    async def limited() -> str:
        return "ok"

    @sync_cache.with_lock("l:{n}", ttl_ms=10_000, wait_seconds=5)
    async def locked(n: int) -> str | None:
        return sync_cache.acquire_lock(f"l:{n}", 1000)

    assert asyncio.iscoroutinefunction(value)
    assert await value(1) == [1, 1]
    assert await value(1) == [1, 1]
    assert calls == [1]
    assert await limited() == "ok"
    with pytest.raises(RateLimitExceeded):
        await limited()
    assert await locked(1) is None
    assert sync_cache.acquire_lock("l:1", 1000) is not None  # released after the call
    token = sync_cache.acquire_lock("l:2", 10_000)
    releaser = asyncio.get_running_loop().call_later(0.05, sync_cache.release_lock, "l:2", token)
    assert await locked(2) is None  # waited with asyncio.sleep while the loop ran the release
    releaser.cancel()


async def test_sync_service_async_function_releases_its_lock_as_lock_does(
    sync_cache: CacheService, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    @sync_cache.with_lock("l", ttl_ms=1000)
    async def outlives(error: Exception | None) -> None:
        clock.advance(2)  # the lock expires while the body runs
        if error is not None:
            raise error

    with pytest.raises(LockLost):
        await outlives(None)
    with pytest.raises(ValueError, match="body"):  # the body's error goes on; the loss is logged
        await outlives(ValueError("body"))
    assert "was lost before its release" in caplog.text

    @sync_cache.with_lock("m", ttl_ms=10_000)
    async def fails() -> None:
        raise KeyError("body")

    with pytest.raises(KeyError):
        await fails()
    assert sync_cache.acquire_lock("m", 1000) is not None  # released after the error


async def test_async_service_decorates_async_functions(async_cache: AsyncCacheService) -> None:
    calls: list[int] = []

    @async_cache.cached(ttl=60, key="v:{x}")
    async def value(x: int) -> list[int]:
        calls.append(x)
        await asyncio.sleep(0.05)
        return [x]

    results = await asyncio.gather(*(value(3) for _ in range(10)))
    assert results == [[3]] * 10 and calls == [3]  # one computation for concurrent misses

    @async_cache.with_lock("l", ttl_ms=10_000)
    @async_cache.rate_limited(limit=1, window_seconds=60)
    async def once() -> str:
        return "ok"

    assert await once() == "ok"
    with pytest.raises(RateLimitExceeded):
        await once()
    assert await async_cache.acquire_lock("l", 1000) is not None


def test_async_service_refuses_plain_functions() -> None:
    service = AsyncCacheService()

    def plain(x: int) -> int:
        return x

    for decorator in (
        service.cached(ttl=60, key="k:{x}"),
        service.rate_limited(limit=1, window_seconds=60),
        service.with_lock("l:{x}", ttl_ms=1000),
    ):
        with pytest.raises(TypeError, match="needs an async def function"):
            decorator(plain)
