"""Every public method x each bad argument: the same exception type and message in memory mode,
Redis mode and during fallback (memory serving, and the "fail_closed" / "fail_open" policies
answering), for `CacheService` and `AsyncCacheService`; the refused call changes nothing.

The table states the expected outcome once; every mode must give exactly it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _servers import free_port
from cachebolt import AsyncCacheService, CacheConfig, CacheService, SerializationError
from cachebolt.fastapi import RateLimit, WithLock
from conftest import LoopThread, SyncProxy
from test_fallback import config_for

MAX_KEY = (1 << 15) - 1 - 16  # bytes (rust/src/store/validate.rs)
ALGORITHMS = "sliding_log, fixed_window, sliding_counter, gcra"
MODES = ["memory", "redis", "fallback", "fail_closed", "fail_open"]


@dataclass(frozen=True)
class Case:
    method: str
    label: str
    call: Callable[[Any], object]
    error: type[Exception] | None
    outcome: object  # the message when `error` is set, else the value returned


CASES: list[Case] = []


def str_values(name: str) -> list[tuple[str, Any, type[Exception], str]]:
    """A `str` argument of the wrong type."""
    return [
        (f"{name}=5", 5, TypeError, f"{name} must be a str, not int"),
        (f"{name}=None", None, TypeError, f"{name} must be a str, not NoneType"),
        (f"{name}=bytes", b"k", TypeError, f"{name} must be a str, not bytes"),
    ]


def key_values(name: str = "key") -> list[tuple[str, Any, type[Exception], str]]:
    """A key of the wrong type, empty or too long."""
    long_ascii, long_utf8 = "x" * (MAX_KEY + 1), "\u00e9" * (MAX_KEY // 2 + 1)
    too_long = f"{name} is too long: {{}} bytes, at most {MAX_KEY} allowed"
    return [
        *str_values(name),
        (f"{name}=''", "", ValueError, f"{name} must be a non-empty str"),
        (f"{name} too long", long_ascii, ValueError, too_long.format(MAX_KEY + 1)),
        (f"{name} too long (utf-8)", long_utf8, ValueError, too_long.format(MAX_KEY + 1)),
    ]


def seconds_values(name: str, *, optional: bool = False) -> list[tuple[str, Any, type, str]]:
    """A duration in seconds: a finite int | float > 0, at most 2^47 ms."""
    positive = f"{name} must be a positive finite number of seconds, got {{}}"
    rows = [
        (f"{name}='1'", "1", TypeError, f"{name} must be an int or a float, not str"),
        (f"{name}=True", True, TypeError, f"{name} must be an int or a float, not bool"),
        (f"{name}=[1]", [1], TypeError, f"{name} must be an int or a float, not list"),
        (f"{name}=0", 0, ValueError, positive.format(0)),
        (f"{name}=-1", -1, ValueError, positive.format(-1)),
        (f"{name}=-0.5", -0.5, ValueError, positive.format(-0.5)),
        (f"{name}=nan", math.nan, ValueError, positive.format("nan")),
        (f"{name}=inf", math.inf, ValueError, positive.format("inf")),
        (f"{name}=-inf", -math.inf, ValueError, positive.format("-inf")),
        (f"{name}=1e300", 1e300, ValueError, f"{name} is too large: 1e+300 seconds"),
        (f"{name}=10**400", 10**400, ValueError, f"{name} is too large: {10**400} seconds"),
    ]
    if not optional:
        rows.append(
            (f"{name}=None", None, TypeError, f"{name} must be an int or a float, not NoneType")
        )
    return rows


def int_values(name: str) -> list[tuple[str, Any, type[Exception], str]]:
    """An int argument of the wrong type or beyond 64 bits."""
    return [
        (f"{name}=1.5", 1.5, TypeError, f"{name} must be an int, not float"),
        (f"{name}='1'", "1", TypeError, f"{name} must be an int, not str"),
        (f"{name}=True", True, TypeError, f"{name} must be an int, not bool"),
        (f"{name}=None", None, TypeError, f"{name} must be an int, not NoneType"),
        (f"{name}=2**70", 1 << 70, ValueError, f"{name} is out of the 64-bit range, got {1 << 70}"),
    ]


def ms_values(name: str = "ttl_ms") -> list[tuple[str, Any, type[Exception], str]]:
    positive = f"{name} must be a positive number of milliseconds, got {{}}"
    return [
        *int_values(name),
        (f"{name}=0", 0, ValueError, positive.format(0)),
        (f"{name}=-5", -5, ValueError, positive.format(-5)),
        (f"{name}=2**48", 1 << 48, ValueError, positive.format(1 << 48)),
    ]


def limit_values() -> list[tuple[str, Any, type[Exception], str]]:
    return [
        *int_values("limit"),
        ("limit=0", 0, ValueError, "limit must be >= 1, got 0"),
        ("limit=-1", -1, ValueError, "limit must be >= 1, got -1"),
    ]


def cost_values() -> list[tuple[str, Any, type[Exception], str]]:
    return [*int_values("cost"), ("cost=-1", -1, ValueError, "cost must be >= 0, got -1")]


def algorithm_values() -> list[tuple[str, Any, type[Exception], str]]:
    unknown = f"unknown rate limit algorithm {{}}; expected one of: {ALGORITHMS}"
    return [
        *str_values("algorithm"),
        ("algorithm='nope'", "nope", ValueError, unknown.format("'nope'")),
        ("algorithm='GCRA'", "GCRA", ValueError, unknown.format("'GCRA'")),
    ]


def choice_values(name: str, choices: str) -> list[tuple[str, Any, type[Exception], str]]:
    return [
        (f"{name}='x'", "x", ValueError, f"{name} must be one of {choices}, got 'x'"),
        (f"{name}=5", 5, ValueError, f"{name} must be one of {choices}, got 5"),
    ]


WAIT = [
    ("wait_seconds='1'", "1", TypeError, "wait_seconds must be an int or a float, not str"),
    ("wait_seconds=True", True, TypeError, "wait_seconds must be an int or a float, not bool"),
    ("wait_seconds=-1", -1, ValueError, "wait_seconds must be a finite number >= 0, got -1"),
    (
        "wait_seconds=nan",
        math.nan,
        ValueError,
        "wait_seconds must be a finite number >= 0, got nan",
    ),
    (
        "wait_seconds=inf",
        math.inf,
        ValueError,
        "wait_seconds must be a finite number >= 0, got inf",
    ),
]


def held(manager: Any) -> None:
    with manager:
        pass


def fn() -> int:
    return 1


# --- the table -----------------------------------------------------------------------------------


def table(
    rows: list[tuple[str, Any, type[Exception], str]], **calls: Callable[..., object]
) -> None:
    """Each row's bad value through each call: method name -> call(cache, bad value)."""
    for label, bad, error, message in rows:
        for method, call in calls.items():
            CASES.append(Case(method, label, lambda c, f=call, b=bad: f(c, b), error, message))


ONE_KEY = ("get", "delete", "ttl", "incr", "decr", "smembers", "scard", "hgetall")
table(key_values(), **{m: lambda c, b, m=m: getattr(c, m)(b) for m in ONE_KEY})
table(
    key_values(),
    set=lambda c, b: c.set(b, 1),
    get_or_set=lambda c, b: c.get_or_set(b, 10, fn),
    expire=lambda c, b: c.expire(b, 10),
    incrby=lambda c, b: c.incrby(b, 2),
    sadd=lambda c, b: c.sadd(b, "m"),
    srem=lambda c, b: c.srem(b, "m"),
    sismember=lambda c, b: c.sismember(b, "m"),
    hset=lambda c, b: c.hset(b, "f", "v"),
    hget=lambda c, b: c.hget(b, "f"),
    hdel=lambda c, b: c.hdel(b, "f"),
    check_rate_limit=lambda c, b: c.check_rate_limit(b, 5, 60),
    hit_rate_limit=lambda c, b: c.hit_rate_limit(b, 5, 60),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([(b, 5, 60)]),
)
table(
    key_values("lock_key"),
    acquire_lock=lambda c, b: c.acquire_lock(b, 1000),
    acquire_fenced_lock=lambda c, b: c.acquire_fenced_lock(b, 1000),
    release_lock=lambda c, b: c.release_lock(b, "t"),
    extend_lock=lambda c, b: c.extend_lock(b, "t", 1000),
    lock=lambda c, b: held(c.lock(b, 1000)),
    fenced_lock=lambda c, b: held(c.fenced_lock(b, 1000)),
)
table(
    key_values("channel"),
    publish=lambda c, b: c.publish(b, 1),
    subscribe=lambda c, b: c.subscribe(b, print),
)
# Template keys (key=None derives the key from the function).
table(
    [row for row in key_values("key template") if row[1] is not None][:3],
    cached=lambda c, b: c.cached(ttl=10, key=b)(fn),
    rate_limited=lambda c, b: c.rate_limited(limit=5, window_seconds=60, key=b)(fn),
)
table(key_values("lock name template")[:4], with_lock=lambda c, b: c.with_lock(b, ttl_ms=1000)(fn))

table(
    seconds_values("ttl", optional=True),
    set=lambda c, b: c.set("k", 1, b),
    get_or_set=lambda c, b: c.get_or_set("k", b, fn),
    cached=lambda c, b: c.cached(ttl=b),
)
table(seconds_values("ttl_seconds"), expire=lambda c, b: c.expire("k", b))
table(
    seconds_values("window_seconds"),
    check_rate_limit=lambda c, b: c.check_rate_limit("k", 5, b),
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", 5, b),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([("k", 5, b)]),
    rate_limited=lambda c, b: c.rate_limited(limit=5, window_seconds=b),
)
table(
    ms_values(),
    acquire_lock=lambda c, b: c.acquire_lock("k", b),
    acquire_fenced_lock=lambda c, b: c.acquire_fenced_lock("k", b),
    extend_lock=lambda c, b: c.extend_lock("k", "t", b),
    lock=lambda c, b: held(c.lock("k", b)),
    fenced_lock=lambda c, b: held(c.fenced_lock("k", b)),
    with_lock=lambda c, b: c.with_lock("k", ttl_ms=b),
)
table(
    [*str_values("token"), ("token=''", "", None, False)],  # no lock has the empty token
    release_lock=lambda c, b: c.release_lock("k", b),
    extend_lock=lambda c, b: c.extend_lock("k", b, 1000),
)
table(
    limit_values(),
    check_rate_limit=lambda c, b: c.check_rate_limit("k", b, 60),
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", b, 60),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([("k", b, 60)]),
    rate_limited=lambda c, b: c.rate_limited(limit=b, window_seconds=60),
)
table(
    cost_values(),
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", 5, 60, cost=b),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([("k", 5, 60)], cost=b),
    rate_limited=lambda c, b: c.rate_limited(limit=5, window_seconds=60, cost=b),
)
table(
    algorithm_values(),
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", 5, 60, algorithm=b),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([("k", 5, 60)], algorithm=b),
    rate_limited=lambda c, b: c.rate_limited(limit=5, window_seconds=60, algorithm=b),
)
table(
    [
        (
            "gcra span",
            10**9,
            ValueError,
            f"gcra needs limit * window_ms < 2**53, got limit={10**9} and window_ms=100000000",
        )
    ],
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", b, 10**5, algorithm="gcra"),
    hit_rate_limits=lambda c, b: c.hit_rate_limits([("k", b, 10**5)], algorithm="gcra"),
)
table(
    choice_values("fallback", "'memory', 'fail_closed', 'fail_open'"),
    check_rate_limit=lambda c, b: c.check_rate_limit("k", 5, 60, fallback=b),
    hit_rate_limit=lambda c, b: c.hit_rate_limit("k", 5, 60, fallback=b),
    rate_limited=lambda c, b: c.rate_limited(limit=5, window_seconds=60, fallback=b),
)
table(
    choice_values("fallback", "'memory', 'fail_closed'"),
    acquire_lock=lambda c, b: c.acquire_lock("k", 1000, fallback=b),
    acquire_fenced_lock=lambda c, b: c.acquire_fenced_lock("k", 1000, fallback=b),
    lock=lambda c, b: held(c.lock("k", 1000, fallback=b)),
    with_lock=lambda c, b: c.with_lock("k", ttl_ms=1000, fallback=b),
)
table(
    choice_values("on_lost", "'raise', 'warn'"),
    lock=lambda c, b: held(c.lock("k", 1000, on_lost=b)),
    fenced_lock=lambda c, b: held(c.fenced_lock("k", 1000, on_lost=b)),
    with_lock=lambda c, b: c.with_lock("k", ttl_ms=1000, on_lost=b),
)
table(
    WAIT,
    lock=lambda c, b: held(c.lock("k", 1000, wait_seconds=b)),
    with_lock=lambda c, b: c.with_lock("k", ttl_ms=1000, wait_seconds=b),
)
table(int_values("amount"), incrby=lambda c, b: c.incrby("k", b))

for method, what in (("sadd", "member"), ("srem", "member"), ("hdel", "field")):
    none = [(f"no {what}", None, TypeError, f"{method} needs at least one {what}")]
    table(none, **{method: lambda c, _, m=method: getattr(c, m)("k")})
    table(str_values(what), **{method: lambda c, b, m=method: getattr(c, m)("k", "ok", b)})
table(str_values("member"), sismember=lambda c, b: c.sismember("k", b))
table(str_values("field"), hset=lambda c, b: c.hset("k", b, "v"), hget=lambda c, b: c.hget("k", b))
table(
    [
        *(
            (
                f"value={bad!r}",
                bad,
                TypeError,
                f"value must be a str, an int or a float, not {type(bad).__name__}",
            )
            for bad in (True, None, [1], b"v")
        ),
        *(
            (
                f"value={bad}",
                bad,
                SerializationError,
                f"cannot JSON-encode the hash value for key 'k': {bad} is not a JSON number "
                "(NaN, inf and -inf are refused)",
            )
            for bad in (math.nan, math.inf)
        ),
    ],
    hset=lambda c, b: c.hset("k", "f", b),
)
table(
    [
        *str_values("pattern"),
        ("pattern=''", "", ValueError, "pattern must be a non-empty str"),
        (
            "pattern too long",
            "*" * 513,
            ValueError,
            "pattern is too long: 513 characters, at most 512 allowed",
        ),
    ],
    del_pattern=lambda c, b: c.del_pattern(b),
    scan=lambda c, b: c.scan(0, b),
)
table(
    [
        ("cursor=-1", -1, ValueError, "cursor must be in 0..2^64-1, got -1"),
        ("cursor=2**64", 1 << 64, ValueError, f"cursor must be in 0..2^64-1, got {1 << 64}"),
        ("cursor=1.0", 1.0, TypeError, "cursor must be an int, not float"),
        ("cursor=True", True, TypeError, "cursor must be an int, not bool"),
    ],
    scan=lambda c, b: c.scan(cursor=b),
)
table(
    [
        ("count=0", 0, ValueError, "count must be in 1..2^32, got 0"),
        (
            "count=2**32+1",
            (1 << 32) + 1,
            ValueError,
            f"count must be in 1..2^32, got {(1 << 32) + 1}",
        ),
        ("count=1.5", 1.5, TypeError, "count must be an int, not float"),
        ("count=True", True, TypeError, "count must be an int, not bool"),
    ],
    scan=lambda c, b: c.scan(count=b),
)
table(
    [("fn=5", 5, TypeError, "fn must be callable, not int")],
    get_or_set=lambda c, b: c.get_or_set("k", 10, b),
)
table(
    [("callback=5", 5, TypeError, "callback must be callable, not int")],
    subscribe=lambda c, b: c.subscribe("ch", b),
)
table(
    [
        (
            "not a tuple",
            [["k", 5, 60]],
            TypeError,
            "limits must hold (key, limit, window_seconds) tuples, got ['k', 5, 60]",
        ),
        ("no limit", [], ValueError, "rate_limit_many needs at least one key"),
        (
            "key twice",
            [("k", 5, 60), ("k", 6, 60)],
            ValueError,
            'rate_limit_many keys must be distinct, "k" is given twice',
        ),
    ],
    hit_rate_limits=lambda c, b: c.hit_rate_limits(b),
)

# The FastAPI dependencies check their fixed arguments when the app is built.
table(limit_values(), RateLimit=lambda c, b: RateLimit(b, 60))
table(seconds_values("window_seconds"), RateLimit=lambda c, b: RateLimit(5, b))
table(cost_values(), RateLimit=lambda c, b: RateLimit(5, 60, cost=b))
table(algorithm_values(), RateLimit=lambda c, b: RateLimit(5, 60, algorithm=b))
table(
    choice_values("fallback", "'memory', 'fail_closed', 'fail_open'"),
    RateLimit=lambda c, b: RateLimit(5, 60, fallback=b),
)
table(key_values("name")[:5], WithLock=lambda c, b: WithLock(b, 1000))
table(ms_values(), WithLock=lambda c, b: WithLock("k", b))
table(
    choice_values("fallback", "'memory', 'fail_closed'"),
    WithLock=lambda c, b: WithLock("k", 1000, fallback=b),
)
table(
    choice_values("on_lost", "'raise', 'warn'"),
    WithLock=lambda c, b: WithLock("k", 1000, on_lost=b),
)

METHODS = sorted({c.method for c in CASES})


# --- the modes -----------------------------------------------------------------------------------


def config(mode: str, request: pytest.FixtureRequest) -> CacheConfig:
    if mode == "memory":
        return CacheConfig()
    if mode == "redis":
        redis_config: CacheConfig = request.getfixturevalue("redis_config")
        return redis_config
    # No server listens on the port: the first connection is refused and the breaker opens.
    policy = {"fallback": "memory", "fail_closed": "fail_closed", "fail_open": "fail_open"}[mode]
    return config_for(
        free_port(),
        lock_fallback="memory" if policy == "fail_open" else policy,
        rate_limit_fallback=policy,
    )


@contextlib.contextmanager
def service(flavour: str, settings: CacheConfig) -> Iterator[Any]:
    if flavour == "sync":
        with CacheService(settings) as sync_service:
            yield sync_service
        return
    runner = LoopThread()

    async def build() -> AsyncCacheService:
        return AsyncCacheService(settings)

    proxy = SyncProxy(runner.run(build()), runner)
    proxy.connect()
    try:
        yield proxy
    finally:
        proxy.close()
        runner.stop()


def snapshot(cache: Any) -> dict[str, Any]:
    """Every key (locks and rate limits too) with its type-specific contents."""
    keys: set[str] = set()
    cursor = 0
    while True:
        cursor, found = cache.scan(cursor, "*", 1000)
        keys.update(found)
        if cursor == 0:
            break
    return {key: cache.ttl(key) > -2 for key in sorted(keys)}


def seed(cache: Any) -> None:
    cache.set("seed:value", {"a": 1})
    cache.sadd("seed:set", "m")
    cache.hset("seed:hash", "f", "v")


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_a_bad_argument_is_named_alike_in_every_mode(
    method: str, mode: str, flavour: str, request: pytest.FixtureRequest
) -> None:
    settings = config(mode, request)
    wrong: list[str] = []
    with service(flavour, settings) as cache:
        assert cache.is_redis_available() is (mode == "redis")
        seed(cache)
        before = snapshot(cache)
        for row in (c for c in CASES if c.method == method):
            try:
                got: object = row.call(cache)
            except Exception as exc:
                if row.error is None or type(exc) is not row.error or str(exc) != row.outcome:
                    wrong.append(f"{row.label}: {type(exc).__name__}({str(exc)[:200]!r})")
            else:
                if row.error is not None or got != row.outcome:
                    wrong.append(f"{row.label}: returned {got!r}")
        after = snapshot(cache)
    assert not wrong, "\n".join(wrong)
    assert after == before
