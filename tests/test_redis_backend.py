"""The Redis backend on its own, against real `redis-server` processes the tests start.

Every method is checked against the Rust store (`MemoryStore`) doing the same calls: same values,
same exception types. Rate limits run the store's own tables
(rust/src/store/rate_limit/algorithm.rs) and random call sequences side by side with the store's
manual clock, through the scripts' test
clock (ARGV[4]), so the answers must be identical to the millisecond. Faults: a refused port, a
frozen (SIGSTOPped) server and a wrong password raise `BackendUnavailable` promptly and never
show the password.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time
import traceback
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _servers import RedisCluster, RedisServer, make_tls_files
from cachebolt._async.redis_backend import AsyncRedisBackend
from cachebolt._core import MemoryStore
from cachebolt._redis import escape_glob
from cachebolt._redis_clients import _pack_py
from cachebolt._redis_errors import BackendUnavailable, map_redis_errors
from cachebolt._sync.redis_backend import RedisBackend
from cachebolt.config import CacheConfig
from cachebolt.exceptions import CacheError, WrongTypeError
from hypothesis import given
from hypothesis import strategies as st

SECRET = "s3cret-pa55word"


def config_for(server: RedisServer, **kwargs: Any) -> CacheConfig:
    options: dict[str, Any] = {"enabled": True, "host": server.host, "port": server.port}
    options.update(kwargs)
    return CacheConfig(**options)


class BlockingAsync:
    """An `AsyncRedisBackend` driven from blocking code, on an event loop of its own."""

    def __init__(self, backend: AsyncRedisBackend) -> None:
        self.backend = backend
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.backend, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self.loop.run_until_complete(self.backend.aclose())
        self.loop.close()


def open_backend(config: CacheConfig, flavour: str) -> Any:
    if flavour == "sync":
        return RedisBackend(config)
    return BlockingAsync(AsyncRedisBackend(config))


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rb(redis_client: redis.Redis, redis_server: RedisServer, flavour: str) -> Iterator[Any]:
    """A backend on the flushed session server, prefix "t:"."""
    backend = open_backend(config_for(redis_server, key_prefix="t:"), flavour)
    backend.connect()
    yield backend
    backend.close()


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    yield store
    store.close()


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as exc:  # the type is the answer
        return ("error", type(exc))


def same(store: MemoryStore, backend: Any, method: str, *args: Any) -> Any:
    """Call `method` on both; the answers (or exception types) must be equal."""
    want = outcome(lambda: getattr(store, method)(*args))
    got = outcome(lambda: getattr(backend, method)(*args))
    assert got == want, f"{method}{args}: redis {got} != store {want}"
    return got[1]


# --- commands, one to one with the store ---------------------------------------------------------


def test_every_command_answers_like_the_store(rb: Any, store: MemoryStore) -> None:
    steps: list[tuple[Any, ...]] = [
        ("get", "a"),
        ("set", "a", b"1"),
        ("get", "a"),
        ("exists", "a"),
        ("exists", "nope"),
        ("incrby", "a", 41),
        ("incrby", "fresh", -3),
        ("get", "a"),
        ("ttl", "a"),
        ("ttl", "nope"),
        ("expire", "a", 100),
        ("ttl", "a"),
        ("expire", "nope", 10),
        ("incrby", "a", 1),  # keeps the TTL
        ("ttl", "a"),
        ("set", "a", b"x", 50.7),
        ("ttl", "a"),
        ("set", "a", b"x"),  # drops the TTL
        ("ttl", "a"),
        ("incrby", "a", 1),  # not an integer
        ("set", "big", b"9223372036854775807"),
        ("incrby", "big", 1),  # overflow
        ("delete", "a"),
        ("delete", "a"),
        ("sadd", "s", "x", "y", "x"),
        ("sadd", "s", "y", "z"),
        ("sismember", "s", "x"),
        ("sismember", "s", "nope"),
        ("smembers", "s"),
        ("smembers", "nope"),
        ("scard", "s"),
        ("srem", "s", "x", "nope"),
        ("scard", "s"),
        ("srem", "s", "y", "z"),  # an emptied set disappears
        ("exists", "s"),
        ("hset", "h", "f", "1"),
        ("hset", "h", "f", "2"),
        ("hset", "h", "g", "é ünïcode"),
        ("hget", "h", "f"),
        ("hget", "h", "nope"),
        ("hget", "nope", "f"),
        ("hgetall", "h"),
        ("hgetall", "nope"),
        ("hdel", "h", "f", "nope"),
        ("hdel", "h", "g"),
        ("exists", "h"),
        # WRONGTYPE everywhere
        ("sadd", "s2", "m"),
        ("hset", "h2", "f", "v"),
        ("set", "str", b"v"),
        ("get", "s2"),
        ("incrby", "h2", 1),
        ("sadd", "str", "m"),
        ("sismember", "h2", "m"),
        ("smembers", "str"),
        ("scard", "h2"),
        ("srem", "h2", "m"),
        ("hset", "s2", "f", "v"),
        ("hget", "str", "f"),
        ("hgetall", "s2"),
        ("hdel", "str", "f"),
        ("ttl", "s2"),
        ("expire", "h2", 5),
        ("delete", "s2"),
    ]
    for method, *args in steps:
        same(store, rb, method, *args)


def test_wrong_type_errors_keep_the_store_messages(rb: Any) -> None:
    rb.set("n", b"abc")
    with pytest.raises(WrongTypeError, match=r"^value is not an integer or out of range$"):
        rb.incrby("n", 1)
    rb.set("n", b"-9223372036854775808")
    with pytest.raises(WrongTypeError, match=r"^increment or decrement would overflow$"):
        rb.incrby("n", -1)
    rb.sadd("s", "m")
    with pytest.raises(WrongTypeError, match=r"^WRONGTYPE Operation against a key holding"):
        rb.get("s")


BAD_CALLS: list[tuple[Any, ...]] = [
    ("get", ""),
    ("get", 5),
    ("get", b"k"),
    ("get", "k" * 40_000),
    ("set", "k", "text"),
    ("set", "k", bytearray(b"x")),
    ("set", "k", b"v", 0),
    ("set", "k", b"v", -1),
    ("set", "k", b"v", float("nan")),
    ("set", "k", b"v", float("inf")),
    ("set", "k", b"v", True),
    ("set", "k", b"v", "10"),
    ("set", "k", b"v", 1e300),
    ("delete", ""),
    ("exists", 1),
    ("incrby", "k", 1.5),
    ("incrby", "k", True),
    ("incrby", "k", 2**63),
    ("ttl", ""),
    ("expire", "k", 0),
    ("expire", "k", False),
    ("del_pattern", 5),
    ("sadd", "k"),
    ("sadd", "k", 1),
    ("srem", "k"),
    ("sismember", "k", 1),
    ("hset", "k", "f", 5),
    ("hset", "k", 5, "v"),
    ("hget", "k", None),
    ("hdel", "k"),
    ("acquire_lock", "", 100),
    ("acquire_lock", "k", 0),
    ("acquire_lock", "k", 1.5),
    ("acquire_lock", "k", True),
    ("acquire_lock", "k", 2**48),
    ("release_lock", "k", None),
    ("extend_lock", "k", "t", -5),
    ("rate_limit", "k", 0, 1, 1, "sliding_log"),
    ("rate_limit", "k", -1, 1, 1, "sliding_log"),
    ("rate_limit", "k", 1.0, 1, 1, "sliding_log"),
    ("rate_limit", "k", True, 1, 1, "sliding_log"),
    ("rate_limit", "k", 1, 0, 1, "sliding_log"),
    ("rate_limit", "k", 1, float("nan"), 1, "sliding_log"),
    ("rate_limit", "k", 1, True, 1, "sliding_log"),
    ("rate_limit", "k", 1, 1, -1, "sliding_log"),
    ("rate_limit", "k", 1, 1, 1.0, "sliding_log"),
    ("rate_limit", "k", 1, 1, 1, "token_bucket"),
    ("rate_limit", "k", 1, 1, 1, 5),
    ("rate_limit", "", 1, 1, 1, "sliding_log"),
]


@pytest.mark.parametrize("call", BAD_CALLS, ids=lambda c: f"{c[0]}{c[1:]!r}"[:60])
def test_bad_arguments_raise_like_the_store_before_any_io(
    call: tuple[Any, ...], store: MemoryStore
) -> None:
    """Same exception type as the store, from a backend whose server refuses connections: the
    check happens before any I/O (else it would be BackendUnavailable)."""
    method, *args = call
    want = outcome(lambda: getattr(store, method)(*args))
    assert want[0] == "error", want
    backend = RedisBackend(CacheConfig(enabled=True, host="127.0.0.1", port=1))
    try:
        got = outcome(lambda: getattr(backend, method)(*args))
    finally:
        backend.close()
    assert got == want


# --- key prefix, scan, pattern deletion ----------------------------------------------------------


def test_escape_glob_makes_a_literal() -> None:
    assert escape_glob("app:") == "app:"
    assert escape_glob("a[1]*?\\:") == "a\\[1\\]\\*\\?\\\\:"


def test_prefixes_are_isolated_and_literal(
    redis_client: redis.Redis, redis_server: RedisServer, flavour: str
) -> None:
    bracket = open_backend(config_for(redis_server, key_prefix="app[1]:"), flavour)
    plain = open_backend(config_for(redis_server, key_prefix="app1:"), flavour)
    star = open_backend(config_for(redis_server, key_prefix="*:"), flavour)
    try:
        for backend, n in ((bracket, 3), (plain, 4), (star, 2)):
            for i in range(n):
                backend.set(f"k{i}", b"v")
            backend.sadd("set", "m")
            assert backend.acquire_lock("L", 10_000)
            assert backend.rate_limit("R", 5, 10)[0]
        raw = set(redis_client.keys("*"))
        assert {"app[1]:k0", "app1:k0", "*:k0", "app[1]:lock:L", "app1:ratelimit:R"} <= raw
        assert bracket.get("k3") is None
        assert plain.get("k3") == b"v"

        def walk(backend: Any, pattern: str = "*") -> list[str]:
            cursor, keys = backend.scan(0, pattern, 2)
            seen = list(keys)
            while cursor:
                cursor, keys = backend.scan(cursor, pattern, 2)
                seen += keys
            return sorted(set(seen))

        assert walk(bracket) == sorted(["k0", "k1", "k2", "set", "lock:L", "ratelimit:R"])
        assert walk(plain, "k*") == ["k0", "k1", "k2", "k3"]
        assert walk(star, "*") == sorted(["k0", "k1", "set", "lock:L", "ratelimit:R"])

        assert bracket.del_pattern("k[01]") == 2
        assert plain.exists("k0") and plain.exists("k1")
        assert bracket.flush() == 4  # k2, set, lock:L, ratelimit:R
        assert walk(bracket) == []
        assert len(walk(plain)) == 7
        assert star.flush() == 5
        assert sorted(redis_client.keys("*")) == sorted(f"app1:{k}" for k in walk(plain))
    finally:
        for backend in (bracket, plain, star):
            backend.close()


def test_empty_prefix_flush_clears_the_db_with_scan(
    redis_client: redis.Redis, redis_server: RedisServer, flavour: str
) -> None:
    backend = open_backend(config_for(redis_server), flavour)
    try:
        redis_client.mset({f"key{i}": "v" for i in range(2500)})
        assert backend.del_pattern("key1*") == 1111
        assert backend.flush() == 2500 - 1111
        assert redis_client.dbsize() == 0
    finally:
        backend.close()


def test_scan_returns_every_key_once_walked(rb: Any) -> None:
    names = {f"user:{i}" for i in range(300)}
    for name in names:
        rb.set(name, b"1")
    rb.set("other", b"1")
    seen: list[str] = []
    cursor, keys = rb.scan(0, "user:*", 50)
    seen += keys
    while cursor:
        cursor, keys = rb.scan(cursor, "user:*", 50)
        seen += keys
    assert set(seen) == names


# --- locks ---------------------------------------------------------------------------------------


def test_locks(rb: Any, redis_client: redis.Redis, store: MemoryStore) -> None:
    token = rb.acquire_lock("job", 5_000)
    assert isinstance(token, str) and len(token) == 32 and int(token, 16) >= 0
    assert redis_client.get("t:lock:job") == token
    assert 4_000 < redis_client.pttl("t:lock:job") <= 5_000
    assert rb.acquire_lock("job", 5_000) is None
    assert rb.release_lock("job", "0" * 32) is False
    assert rb.extend_lock("job", "0" * 32, 60_000) is False
    assert rb.extend_lock("job", token, 60_000) is True
    assert 59_000 < redis_client.pttl("t:lock:job") <= 60_000
    assert rb.release_lock("job", token) is True
    assert rb.release_lock("job", token) is False
    assert rb.extend_lock("job", token, 1000) is False
    other = rb.acquire_lock("job", 5_000)
    assert other is not None and other != token
    stats = rb.stats()
    assert (stats["lock_acquired"], stats["lock_contended"]) == (2, 1)
    # A key of another type at the lock's name: never held, as in the store.
    for backend in (rb, store):
        backend.sadd("lock:odd", "m")
        assert backend.release_lock("odd", "m") is False
        assert backend.extend_lock("odd", "m", 100) is False
        assert backend.acquire_lock("odd", 100) is None


def test_lock_expires(rb: Any) -> None:
    token = rb.acquire_lock("short", 30)
    time.sleep(0.08)
    assert rb.release_lock("short", token) is False
    assert rb.acquire_lock("short", 30) is not None


# --- rate limits ---------------------------------------------------------------------------------

# (now, limit, window, cost, allowed, remaining, reset_after, retry_after), times in ms: the
# tables of rust/src/store/rate_limit/algorithm.rs, run through the scripts with their test clock.
RUST_TABLES: dict[str, list[list[tuple[int, ...]]]] = {
    "sliding_log": [
        [
            (0, 3, 1000, 1, 1, 2, 1000, 0),
            (100, 3, 1000, 1, 1, 1, 1000, 0),
            (200, 3, 1000, 1, 1, 0, 1000, 0),
            (300, 3, 1000, 1, 0, 0, 900, 700),
            (300, 3, 1000, 0, 0, 0, 900, 700),
            (999, 3, 1000, 1, 0, 0, 201, 1),
            (1000, 3, 1000, 1, 1, 0, 1000, 0),
            (1000, 3, 1000, 2, 0, 0, 1000, 200),
            (1199, 3, 1000, 2, 0, 1, 801, 1),
            (1200, 3, 1000, 2, 1, 0, 1000, 0),
            (1200, 3, 1000, 4, 0, 0, 1000, 1000),
            (1200, 3, 1000, 0, 0, 0, 1000, 800),
            (5000, 3, 1000, 0, 1, 3, 0, 0),
            (5000, 3, 1000, 3, 1, 0, 1000, 0),
            (4000, 3, 1000, 1, 0, 0, 1000, 1000),
            (5500, 2, 1000, 1, 0, 0, 500, 500),
            (5500, 3, 400, 1, 1, 2, 400, 0),
        ]
    ],
    "fixed_window": [
        [
            (10, 3, 1000, 2, 1, 1, 990, 0),
            (500, 3, 1000, 2, 0, 1, 500, 500),
            (500, 3, 1000, 1, 1, 0, 500, 0),
            (500, 3, 1000, 0, 0, 0, 500, 500),
            (999, 3, 1000, 1, 0, 0, 1, 1),
            (1000, 3, 1000, 1, 1, 2, 1000, 0),
            (1000, 3, 1000, 5, 0, 2, 1000, 1000),
            (1000, 3, 1000, 0, 1, 2, 1000, 0),
            (900, 3, 1000, 2, 1, 0, 1000, 0),
            (3500, 3, 1000, 0, 1, 3, 0, 0),
            (3500, 3, 1000, 1, 1, 2, 500, 0),
            (3500, 3, 600, 2, 1, 0, 100, 0),
            (3599, 3, 600, 1, 0, 0, 1, 1),
            (3600, 3, 600, 3, 1, 0, 600, 0),
        ]
    ],
    "sliding_counter": [
        [
            (0, 10, 1000, 10, 1, 0, 2000, 0),
            (500, 10, 1000, 1, 0, 0, 1500, 600),
            (1099, 10, 1000, 1, 0, 0, 901, 1),
            (1100, 10, 1000, 1, 1, 0, 1900, 0),
            (1100, 10, 1000, 0, 0, 0, 1900, 100),
            (1200, 10, 1000, 0, 1, 1, 1800, 0),
            (1200, 10, 1000, 11, 0, 1, 1800, 1000),
            (1500, 10, 1000, 5, 0, 4, 1500, 100),
            (1599, 10, 1000, 5, 0, 4, 1401, 1),
            (1600, 10, 1000, 5, 1, 0, 1400, 0),
            (2000, 10, 1000, 10, 0, 4, 1000, 1000),
            (2999, 10, 1000, 10, 0, 9, 1, 1),
            (3000, 10, 1000, 10, 1, 0, 2000, 0),
            (5000, 10, 1000, 0, 1, 10, 0, 0),
        ],
        [
            (0, 2, 1000, 2, 1, 0, 2000, 0),
            (1, 2, 1000, 2, 0, 0, 1999, 1999),
            (1999, 2, 1000, 2, 0, 1, 1, 1),
            (2000, 2, 1000, 2, 1, 0, 2000, 0),
        ],
        [
            (0, 4, 100, 3, 1, 1, 200, 0),
            (50, 4, 100, 2, 0, 1, 150, 84),
            (133, 4, 100, 2, 0, 1, 67, 1),
            (134, 4, 100, 2, 1, 0, 166, 0),
            (150, 4, 50, 0, 0, 0, 100, 70),
            (219, 4, 50, 0, 0, 0, 31, 1),
            (220, 4, 50, 0, 1, 1, 30, 0),
        ],
    ],
}
# A clock origin that is a multiple of every window above, so windows align as in the tables.
ORIGIN_MS = 6_000 * 10**8


@pytest.mark.parametrize("algorithm", sorted(RUST_TABLES))
def test_rate_limit_scripts_reproduce_the_rust_tables(rb: Any, algorithm: str) -> None:
    clock = [0]
    backend = rb.backend if isinstance(rb, BlockingAsync) else rb
    backend._test_clock = lambda: ORIGIN_MS + clock[0]
    for number, table in enumerate(RUST_TABLES[algorithm]):
        key = f"{algorithm}-{number}"
        for step, (now, limit, window, cost, *want) in enumerate(table):
            clock[0] = now
            got = rb.rate_limit(key, limit, window / 1000, cost, algorithm)
            expected = (bool(want[0]), want[1], want[2] / 1000, want[3] / 1000)
            assert got == expected, f"{algorithm} table {number} step {step}: {table[step]}"


@pytest.mark.parametrize("algorithm", sorted(RUST_TABLES))
def test_rate_limits_match_the_store_on_random_traffic(
    rb: Any, store: MemoryStore, algorithm: str
) -> None:
    rng = random.Random(f"parity-{algorithm}")
    backend = rb.backend if isinstance(rb, BlockingAsync) else rb
    backend._test_clock = lambda: ORIGIN_MS + store.now_ms()
    for round_ in range(6):
        limit = rng.choice([1, 2, 3, 5, 10, 50])
        window = rng.choice([0.05, 0.1, 1, 2.5, 10])
        key = f"random-{round_}"
        for step in range(150):
            store.advance_clock(
                rng.choice([0, 0, 1, rng.randrange(int(window * 250) + 1), int(window * 1000)])
            )
            cost = rng.choice([0, 1, 1, 1, 2, limit, limit + 1])
            want = store.rate_limit(key, limit, window, cost, algorithm)
            got = rb.rate_limit(key, limit, window, cost, algorithm)
            assert got == want, f"{algorithm} L={limit} W={window} step {step} cost={cost}"


def test_rate_limit_on_server_time(rb: Any, redis_client: redis.Redis) -> None:
    for _ in range(3):
        assert rb.rate_limit("api", 3, 2.0)[0]
    allowed, remaining, reset_after, retry_after = rb.rate_limit("api", 3, 2.0)
    assert (allowed, remaining) == (False, 0)
    assert 1.9 < retry_after <= 2.0 and 1.9 < reset_after <= 2.0
    peek = rb.rate_limit("api", 3, 2.0, 0)
    assert peek[:2] == (False, 0) and 1.8 < peek[3] <= retry_after
    assert redis_client.type("t:ratelimit:api") == "zset"
    assert redis_client.zcard("t:ratelimit:api") == 3  # denied hits recorded nothing
    assert 1900 < redis_client.pttl("t:ratelimit:api") <= 2000
    for algorithm, kind in (("fixed_window", "hash"), ("sliding_counter", "hash")):
        assert rb.rate_limit(algorithm, 2, 1.0, 1, algorithm)[0]
        assert redis_client.type(f"t:ratelimit:{algorithm}") == kind
        assert 0 < redis_client.pttl(f"t:ratelimit:{algorithm}") <= 2000
    stats = rb.stats()
    assert (stats["rate_limit_allowed"], stats["rate_limit_denied"]) == (5, 2)


def test_rate_limit_unique_members_within_one_millisecond(rb: Any) -> None:
    backend = rb.backend if isinstance(rb, BlockingAsync) else rb
    backend._test_clock = lambda: ORIGIN_MS
    results = [rb.rate_limit("burst", 100, 1.0)[0] for _ in range(120)]
    assert results.count(True) == 100
    assert rb.rate_limit("burst", 100, 1.0, 0)[1] == 0


def test_rate_limit_algorithm_mismatch_is_wrong_type(rb: Any, store: MemoryStore) -> None:
    backend = rb.backend if isinstance(rb, BlockingAsync) else rb
    backend._test_clock = lambda: ORIGIN_MS + store.now_ms()  # windows aligned as in the store
    algorithms = ["sliding_log", "fixed_window", "sliding_counter"]
    for first in algorithms:
        for second in algorithms:
            if first == second:
                continue
            key = f"{first}-{second}"
            same(store, rb, "rate_limit", key, 5, 10, 1, first)
            same(store, rb, "rate_limit", key, 5, 10, 1, second)
    for kind in ("set", "sadd", "hset"):
        args = {"set": (b"v",), "sadd": ("m",), "hset": ("f", "v")}[kind]
        same(store, rb, kind, f"ratelimit:user-{kind}", *args)
        for algorithm in algorithms:
            same(store, rb, "rate_limit", f"user-{kind}", 5, 10, 1, algorithm)


# --- faults --------------------------------------------------------------------------------------


def test_refused_port_is_unavailable_at_once(flavour: str) -> None:
    backend = open_backend(
        CacheConfig(enabled=True, host="127.0.0.1", port=1, password=SECRET), flavour
    )
    try:
        for call in (
            backend.connect,
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
            lambda: backend.rate_limit("k", 1, 1),
            lambda: backend.release_lock("k", "t"),
            lambda: backend.del_pattern("*"),
        ):
            started = time.perf_counter()
            with pytest.raises(BackendUnavailable) as caught:
                call()
            assert time.perf_counter() - started < 0.5
            assert_no_secret(caught.value)
    finally:
        backend.close()


def assert_no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert SECRET not in repr(exc)


def test_frozen_server_times_out_within_the_command_timeout(
    private_redis: RedisServer, flavour: str
) -> None:
    backend = open_backend(config_for(private_redis, command_timeout_ms=200), flavour)
    try:
        backend.connect()
        backend.set("k", b"v")
        assert backend.rate_limit("once", 10, 60)[0]
        private_redis.pause()
        try:
            for call in (
                lambda: backend.get("k"),
                lambda: backend.rate_limit("once", 10, 60),
                lambda: backend.scan(),
                backend.connect,
            ):
                started = time.perf_counter()
                with pytest.raises(BackendUnavailable):
                    call()
                assert time.perf_counter() - started < 0.6
        finally:
            private_redis.resume()
        # The timed-out script was sent once and never again (no retry): at most 2 hits.
        with private_redis.client() as client:
            assert client.zcard("ratelimit:once") <= 2
        assert backend.get("k") == b"v"  # reconnects by itself
    finally:
        backend.close()


def test_killed_server_then_restart(private_redis: RedisServer, flavour: str) -> None:
    backend = open_backend(config_for(private_redis, command_timeout_ms=300), flavour)
    try:
        backend.set("k", b"v")
        private_redis.kill()
        started = time.perf_counter()
        with pytest.raises(BackendUnavailable):
            backend.get("k")
        assert time.perf_counter() - started < 0.5
        private_redis.restart()
        backend.connect()
        assert backend.get("k") is None  # nothing persisted
        assert backend.rate_limit("r", 1, 1)[0]  # scripts are loaded again (NOSCRIPT)
        assert backend.release_lock("l", "t") is False
    finally:
        backend.close()


def test_scripts_survive_script_flush_and_killed_connections(
    rb: Any, redis_client: redis.Redis
) -> None:
    # Scripts go straight to the connection (not through redis-py's command path): NOSCRIPT
    # loads them again, a killed connection fails one call and the next reconnects.
    assert rb.rate_limit("r", 2, 60)[0] is True
    token = rb.acquire_lock("l", 60_000)
    redis_client.script_flush()
    assert rb.rate_limit("r", 2, 60)[:2] == (True, 0)
    assert rb.rate_limit("r", 2, 60)[0] is False
    redis_client.script_flush()
    assert rb.extend_lock("l", token, 60_000) is True
    redis_client.script_flush()
    assert rb.release_lock("l", token) is True
    redis_client.client_kill_filter(_type="normal", skipme=True)
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(rb.rate_limit("r2", 5, 60)[0])
        except BackendUnavailable:
            outcomes.append("unavailable")
    assert outcomes[-1] is True, outcomes
    assert redis_client.zcard("t:ratelimit:r2") == outcomes.count(True)


def lingers_to(
    ports: set[int], others: Container[tuple[Any, ...]] = ()
) -> dict[tuple[Any, ...], tuple[int, int]]:
    """(on, seconds) of SO_LINGER of every TCP socket of this process connected to `ports`, by
    local address, but those at the addresses `others`: pass what it found before a backend was
    made, so other clients' connections (earlier tests' leftovers until the garbage collector
    closes them) are not counted as the backend's."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket (or gone)
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                continue
            try:
                port = sock.getpeername()[1]
            except OSError:
                continue
            if port in ports and sock.getsockname() not in others:
                raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
                found[sock.getsockname()] = struct.unpack("ii", raw)
    return found


def test_connections_reset_on_close(
    redis_server: RedisServer,
    redis_client: redis.Redis,  # flushes the server
    flavour: str,
) -> None:
    # A command given up after a timeout must never be delivered later (tests/reliability:
    # test_a_timed_out_write_never_lands_after_newer_ones): SO_LINGER 0 on every connection.
    others = lingers_to({redis_server.port})
    backend = open_backend(config_for(redis_server, key_prefix="t:"), flavour)
    try:
        backend.connect()
        backend.set("k", b"v")
        assert backend.rate_limit("r", 1, 1)[0]
        lingers = lingers_to({redis_server.port}, others)
        assert lingers and set(lingers.values()) == {(1, 0)}, lingers
    finally:
        backend.close()


def test_wrong_password_is_unavailable_and_never_shown(tmp_path: Path, flavour: str) -> None:
    with RedisServer(tmp_path / "auth", password=SECRET) as server:
        wrong = open_backend(config_for(server, password="not-" + SECRET), flavour)
        missing = open_backend(config_for(server), flavour)
        right = open_backend(config_for(server, password=SECRET, username="default"), flavour)
        try:
            for backend in (wrong, missing):
                with pytest.raises(BackendUnavailable) as caught:
                    backend.connect()
                assert_no_secret(caught.value)
                assert "not-" + SECRET not in str(caught.value)
            right.connect()
            right.set("k", b"v")
            assert right.get("k") == b"v"
            assert SECRET not in repr(right)
            assert SECRET not in repr(getattr(right, "backend", right))
        finally:
            for backend in (wrong, missing, right):
                backend.close()


def test_map_redis_errors_masks_the_secret() -> None:
    with pytest.raises(BackendUnavailable) as caught, map_redis_errors(SECRET):
        raise redis.ConnectionError(f"cannot log in with {SECRET}")
    assert_no_secret(caught.value)
    with pytest.raises(CacheError, match=r"^Redis error: NOPERM"), map_redis_errors():
        raise redis.exceptions.NoPermissionError("NOPERM this user has no permissions")
    with pytest.raises(BackendUnavailable), map_redis_errors():
        raise redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down")
    # Anything else raised inside redis-py (a release that moved an attribute) is an outage of
    # the client: the call falls back instead of surfacing redis-py's internals.
    unexpected = r"^Redis client failed: KeyError: 'x'"
    with pytest.raises(BackendUnavailable, match=unexpected), map_redis_errors():
        raise KeyError("x")


def test_construction_does_no_io() -> None:
    started = time.perf_counter()
    RedisBackend(CacheConfig(enabled=True, host="10.255.255.1", port=6379)).close()
    RedisBackend(CacheConfig(enabled=True, host="10.255.255.1", cluster=True)).close()
    AsyncRedisBackend(CacheConfig(enabled=True, host="10.255.255.1", cluster=True))
    assert time.perf_counter() - started < 0.2


# --- TLS and cluster -----------------------------------------------------------------------------


@pytest.mark.usefixtures("needs_tls")
def test_tls_verifies_the_certificate(tmp_path: Path, flavour: str) -> None:
    good = make_tls_files(tmp_path / "good")
    other = make_tls_files(tmp_path / "other", name="other")
    with RedisServer(tmp_path / "tls", tls=good) as server:
        right = open_backend(config_for(server, tls=True, tls_ca_cert=str(good.ca_cert)), flavour)
        wrong_ca = open_backend(
            config_for(server, tls=True, tls_ca_cert=str(other.ca_cert)), flavour
        )
        plaintext = open_backend(config_for(server, command_timeout_ms=300), flavour)
        try:
            right.connect()
            right.set("k", b"v")
            assert right.get("k") == b"v"
            for backend in (wrong_ca, plaintext):
                with pytest.raises(BackendUnavailable):
                    backend.connect()
        finally:
            for backend in (right, wrong_ca, plaintext):
                backend.close()


def test_cluster(redis_cluster: RedisCluster, flavour: str) -> None:
    cluster = redis_cluster  # the session's (conftest.py), flushed here
    cluster.flush()
    host, port = cluster.addresses[0]
    ports = {port for _, port in cluster.addresses}
    others = lingers_to(ports)
    backend = open_backend(
        CacheConfig(enabled=True, host=host, port=port, cluster=True, key_prefix="c:"), flavour
    )
    try:
        backend.connect()
        names = [f"k{i}" for i in range(200)]
        for name in names:
            backend.set(name, b"v")
        # The keys are spread over every primary.
        per_node = []
        for node in cluster.nodes:
            with node.client() as client:
                per_node.append(client.dbsize())
        assert all(count > 0 for count in per_node), per_node
        stats = backend.stats()
        assert stats["keys"] == 200 and stats["evictions"] == 0
        assert 0 < backend.ping() < 1
        lingers = lingers_to(ports, others)
        assert lingers and set(lingers.values()) == {(1, 0)}, lingers
        seen: list[str] = []
        cursor, keys = backend.scan(0, "k*", 30)
        seen += keys
        while cursor:
            cursor, keys = backend.scan(cursor, "k*", 30)
            seen += keys
        assert sorted(set(seen)) == sorted(names)
        for algorithm in ("sliding_log", "fixed_window", "sliding_counter"):
            assert backend.rate_limit(f"r-{algorithm}", 2, 10, 1, algorithm)[0]
        token = backend.acquire_lock("job", 10_000)
        assert token is not None and backend.release_lock("job", token)
        assert backend.del_pattern("k1*") == 111
        assert backend.flush() == 200 - 111 + 3
        for node in cluster.nodes:
            with node.client() as client:
                assert client.dbsize() == 0
    finally:
        backend.close()


@given(
    st.lists(
        st.one_of(st.binary(), st.text(), st.integers(min_value=-(2**63), max_value=2**64)),
        max_size=8,
    )
)
def test_script_packer_matches_hiredis(args: list[Any]) -> None:
    # Without redis[hiredis] scripts are packed by `_pack_py`: the bytes hiredis sends.
    import hiredis  # in the dev extra

    command = (b"EVALSHA", *args)
    assert _pack_py(command) == hiredis.pack_command(command)
