"""Differential test: the Rust `MemoryStore` and a real Redis answer every operation the same.

A Hypothesis `RuleBasedStateMachine` runs random sequences of string, counter, set, hash, expiry,
keyspace (glob patterns with hostile characters in keys and patterns) and lock operations on a
`MemoryStore` and, with raw redis-py commands, on the session `redis-server` under a random key
prefix, and compares every answer and every exception (Redis error replies mapped to the classes
the Rust store raises, messages included). TTLs agree within one second. Lock tokens are random on
both sides, so a token read back through `get` is compared as "the token this side issued".

Contract differences that are by design are not generated: empty keys (the store refuses them),
TTL <= 0 for `expire` (Redis deletes the key, the store refuses the argument).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from cachebolt import WrongTypeError
from cachebolt._core import MemoryStore
from cachebolt._redis import script_text
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

# Keys collide often (a small pool), and carry every glob metacharacter and a lock-key name.
KEYS = [
    "a", "b", "ab", "abc", "a*", "a?b", "[a]", "a[b", "\\", "a\\b", "x]y", "^x", "-", "!a",
    "é", "k 1", "lock:a", "lock:[a]", "h", "a\nb",
]  # fmt: skip
HOT_KEYS = ["a", "a*", "[a]", "lock:a", "é", "a\\b"]
KEY = st.one_of(st.sampled_from(HOT_KEYS), st.sampled_from(KEYS))
GLOB_PATTERNS = [
            "*",
            "a*",
            "a?",
            "?",
            "??",
            "*b",
            "[a-b]*",
            "[^a]*",
            "[!a]*",
            "\\*",
            "a\\",
            "a\\*",
            "[",
            "[a",
            "a[",
            "*]",
            "[]]",
            "[\\]]",
            "*\\**",
            "[a-]",
            "[z-a]*",
            "[-]",
            "lock:*",
            "é*",
            "?\\[*",
            "[\\",
            "*[",
            "a[b",
            "[[]",
            "\\\\",
            "[^]",
            "k *",
        ]  # fmt: skip
PATTERNS = st.one_of(
    st.sampled_from(GLOB_PATTERNS),
    st.text(alphabet="ab*?[]^!-\\é:", min_size=1, max_size=6),
)
RAW_VALUES = [
            b"",
            b"0",
            b"1",
            b"-1",
            b"12",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"1e3",
            b"1.5",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"9223372036854775808",
            b"abc",
            b"\xff\xfe",
            b"0x10",
            b"\x001",
        ]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(RAW_VALUES),
    st.binary(max_size=6),
)
INT64 = (-(2**63), 2**63 - 1)
AMOUNTS = st.one_of(
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**62]),
    st.integers(*INT64),
    st.integers(min_value=-(2**64), max_value=2**64),  # partly out of the 64-bit range
)
MEMBERS = st.sampled_from(["m", "n", "", "é", "*", "1", "a b"])
TTL_MS = st.sampled_from([5_000, 30_000, 100_000, 1_234_567])  # never expires mid-example
LOCK_TTL_MS = st.sampled_from([20_000, 60_000])

_client: redis.Redis | None = None  # the session server, set by the test function below


class Outcome:
    """What a call gave: a value, or an exception class and message (compared in one piece)."""

    def __init__(self, value: Any = None, error: tuple[str, str] | None = None) -> None:
        self.value = value
        self.error = error

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and (self.value, self.error) == (
            other.value,
            other.error,
        )

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        return f"raised {self.error}" if self.error else f"returned {self.value!r}"


def memory_call(fn: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(fn())
    except WrongTypeError as exc:
        return Outcome(error=("WrongTypeError", str(exc)))
    except ValueError as exc:
        return Outcome(error=("ValueError", type(exc).__name__))


def redis_call(fn: Callable[[], Any], *, amount: int | None = None) -> Outcome:
    try:
        return Outcome(fn())
    except redis.ResponseError as exc:
        message = str(exc)
        if amount is not None and not INT64[0] <= amount <= INT64[1]:
            # The store refuses such an argument itself (ValueError), before looking at the key.
            return Outcome(error=("ValueError", "ValueError"))
        if message.startswith("WRONGTYPE") or message in (
            "value is not an integer or out of range",
            "increment or decrement would overflow",
        ):
            return Outcome(error=("WrongTypeError", message))
        return Outcome(error=("ResponseError", message))


class Parity(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert _client is not None
        self.r = _client
        self.prefix = f"parity-{secrets.token_hex(4)}:"  # glob-safe: no metacharacter
        self.mem = MemoryStore(cleanup_interval_seconds=None)
        # The product's lock scripts, so both sides run the lock rules cachebolt ships.
        self.acquire = self.r.register_script(script_text("lock_acquire"))
        self.release = self.r.register_script(script_text("lock_release"))
        self.extend = self.r.register_script(script_text("lock_extend"))
        # Tokens each side issued: key -> token (a token read back is compared symbolically).
        self.mem_tokens: dict[str, str] = {}
        self.steps = 0
        self.redis_tokens: dict[str, str] = {}

    def k(self, key: str) -> str:
        return self.prefix + key

    def strip(self, keys: list[Any]) -> list[str]:
        text = [key.decode() if isinstance(key, bytes) else key for key in keys]
        assert all(key.startswith(self.prefix) for key in text)
        return sorted(key[len(self.prefix) :] for key in text)

    def check(self, what: str, mem: Outcome, red: Outcome) -> None:
        self.steps += 1
        assert mem == red, f"{what}: memory {mem}, redis {red}"

    # --- strings and counters ------------------------------------------------------------------

    @rule(key=KEY, value=VALUES, ttl_ms=st.none() | TTL_MS)
    def set(self, key: str, value: bytes, ttl_ms: int | None) -> None:
        ttl = None if ttl_ms is None else ttl_ms / 1000
        mem = memory_call(lambda: self.mem.set(key, value, ttl))
        red = redis_call(lambda: self.r.set(self.k(key), value, px=ttl_ms) and None)
        self.check(f"set({key!r}, {value!r}, {ttl})", mem, red)

    def _token_view(self, value: Any, tokens: dict[str, str]) -> Any:
        if isinstance(value, bytes) and value.decode("latin-1") in tokens.values():
            return "<this side's lock token>"
        return value

    @rule(key=KEY)
    def get(self, key: str) -> None:
        mem = memory_call(lambda: self._token_view(self.mem.get(key), self.mem_tokens))
        red = redis_call(lambda: self._token_view(self.r.get(self.k(key)), self.redis_tokens))
        self.check(f"get({key!r})", mem, red)

    @rule(key=KEY)
    def delete(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.delete(key))
        red = redis_call(lambda: self.r.delete(self.k(key)) == 1)
        self.check(f"delete({key!r})", mem, red)

    @rule(key=KEY)
    def exists(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.exists(key))
        red = redis_call(lambda: self.r.exists(self.k(key)) == 1)
        self.check(f"exists({key!r})", mem, red)

    @rule(key=KEY, amount=AMOUNTS)
    def incrby(self, key: str, amount: int) -> None:
        mem = memory_call(lambda: self.mem.incrby(key, amount))
        red = redis_call(lambda: self.r.incrby(self.k(key), amount), amount=amount)
        self.check(f"incrby({key!r}, {amount})", mem, red)

    # --- expiry --------------------------------------------------------------------------------

    @rule(key=KEY)
    def ttl(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.ttl(key))
        red = redis_call(lambda: self.r.ttl(self.k(key)))
        if (
            isinstance(mem.value, int)
            and isinstance(red.value, int)
            and min(mem.value, red.value) >= 0
        ):
            assert abs(mem.value - red.value) <= 1, f"ttl({key!r}): memory {mem}, redis {red}"
            return
        self.check(f"ttl({key!r})", mem, red)

    @rule(key=KEY)
    def pttl(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.pttl(key))
        red = redis_call(lambda: self.r.pttl(self.k(key)))
        if (
            isinstance(mem.value, int)
            and isinstance(red.value, int)
            and min(mem.value, red.value) >= 0
        ):
            assert abs(mem.value - red.value) <= 1000, f"pttl({key!r}): memory {mem}, redis {red}"
            return
        self.check(f"pttl({key!r})", mem, red)

    @rule(key=KEY, ttl_ms=TTL_MS)
    def expire(self, key: str, ttl_ms: int) -> None:
        mem = memory_call(lambda: self.mem.expire(key, ttl_ms / 1000))
        red = redis_call(lambda: bool(self.r.pexpire(self.k(key), ttl_ms)))
        self.check(f"expire({key!r}, {ttl_ms / 1000})", mem, red)

    @rule(key=KEY)
    def persist(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.persist(key))
        red = redis_call(lambda: bool(self.r.persist(self.k(key))))
        self.check(f"persist({key!r})", mem, red)

    # --- keyspace ------------------------------------------------------------------------------

    @rule(pattern=PATTERNS)
    def keys(self, pattern: str) -> None:
        mem = memory_call(lambda: sorted(self.mem.keys(pattern)))
        red = redis_call(lambda: self.strip(self.r.keys(self.prefix + pattern)))
        self.check(f"keys({pattern!r})", mem, red)

    @rule(pattern=PATTERNS, count=st.sampled_from([1, 3, 100]))
    def scan(self, pattern: str, count: int) -> None:
        def memory_scan() -> list[str]:
            seen: set[str] = set()
            cursor = 0
            while True:
                cursor, batch = self.mem.scan(cursor, pattern, count)
                seen.update(batch)
                if cursor == 0:
                    return sorted(seen)

        mem = memory_call(memory_scan)
        red = redis_call(
            lambda: sorted(set(self.strip(list(self.r.scan_iter(self.prefix + pattern, count)))))
        )
        self.check(f"scan({pattern!r}, count={count})", mem, red)

    @rule(pattern=PATTERNS)
    def del_pattern(self, pattern: str) -> None:
        def redis_del_pattern() -> int:
            found = self.r.keys(self.prefix + pattern)
            return int(self.r.delete(*found)) if found else 0

        mem = memory_call(lambda: self.mem.del_pattern(pattern))
        red = redis_call(redis_del_pattern)
        self.check(f"del_pattern({pattern!r})", mem, red)

    # --- sets ----------------------------------------------------------------------------------

    @rule(key=KEY, members=st.lists(MEMBERS, min_size=1, max_size=3))
    def sadd(self, key: str, members: list[str]) -> None:
        mem = memory_call(lambda: self.mem.sadd(key, *members))
        red = redis_call(lambda: self.r.sadd(self.k(key), *members))
        self.check(f"sadd({key!r}, {members})", mem, red)

    @rule(key=KEY, members=st.lists(MEMBERS, min_size=1, max_size=3))
    def srem(self, key: str, members: list[str]) -> None:
        mem = memory_call(lambda: self.mem.srem(key, *members))
        red = redis_call(lambda: self.r.srem(self.k(key), *members))
        self.check(f"srem({key!r}, {members})", mem, red)

    @rule(key=KEY, member=MEMBERS)
    def sismember(self, key: str, member: str) -> None:
        mem = memory_call(lambda: self.mem.sismember(key, member))
        red = redis_call(lambda: bool(self.r.sismember(self.k(key), member)))
        self.check(f"sismember({key!r}, {member!r})", mem, red)

    @rule(key=KEY)
    def smembers(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.smembers(key))
        red = redis_call(lambda: {m.decode() for m in self.r.smembers(self.k(key))})
        self.check(f"smembers({key!r})", mem, red)

    @rule(key=KEY)
    def scard(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.scard(key))
        red = redis_call(lambda: self.r.scard(self.k(key)))
        self.check(f"scard({key!r})", mem, red)

    # --- hashes --------------------------------------------------------------------------------

    @rule(key=KEY, field=MEMBERS, value=MEMBERS)
    def hset(self, key: str, field: str, value: str) -> None:
        mem = memory_call(lambda: self.mem.hset(key, field, value))
        red = redis_call(lambda: self.r.hset(self.k(key), field, value))
        self.check(f"hset({key!r}, {field!r}, {value!r})", mem, red)

    @rule(key=KEY, field=MEMBERS)
    def hget(self, key: str, field: str) -> None:
        def redis_hget() -> str | None:
            value = self.r.hget(self.k(key), field)
            return None if value is None else value.decode()

        mem = memory_call(lambda: self.mem.hget(key, field))
        red = redis_call(redis_hget)
        self.check(f"hget({key!r}, {field!r})", mem, red)

    @rule(key=KEY)
    def hgetall(self, key: str) -> None:
        def redis_hgetall() -> dict[str, str]:
            return {f.decode(): v.decode() for f, v in self.r.hgetall(self.k(key)).items()}

        mem = memory_call(lambda: self.mem.hgetall(key))
        red = redis_call(redis_hgetall)
        self.check(f"hgetall({key!r})", mem, red)

    @rule(key=KEY, fields=st.lists(MEMBERS, min_size=1, max_size=3))
    def hdel(self, key: str, fields: list[str]) -> None:
        mem = memory_call(lambda: self.mem.hdel(key, *fields))
        red = redis_call(lambda: self.r.hdel(self.k(key), *fields))
        self.check(f"hdel({key!r}, {fields})", mem, red)

    @rule(key=KEY)
    def hlen(self, key: str) -> None:
        mem = memory_call(lambda: self.mem.hlen(key))
        red = redis_call(lambda: self.r.hlen(self.k(key)))
        self.check(f"hlen({key!r})", mem, red)

    # --- locks (the store's `lock:<key>`; Redis: cachebolt's lock scripts) ---------------------

    @rule(key=st.sampled_from(["a", "[a]", "b"]), ttl_ms=LOCK_TTL_MS)
    def acquire_lock(self, key: str, ttl_ms: int) -> None:
        def redis_acquire() -> bool:
            token = secrets.token_hex(16)
            if self.acquire(keys=[self.k(f"lock:{key}")], args=[token, ttl_ms]) == 1:
                self.redis_tokens[key] = token
                return True
            return False

        def memory_acquire() -> bool:
            token = self.mem.acquire_lock(key, ttl_ms)
            if token is not None:
                self.mem_tokens[key] = token
            return token is not None

        mem = memory_call(memory_acquire)
        red = redis_call(redis_acquire)
        self.check(f"acquire_lock({key!r}, {ttl_ms})", mem, red)

    @rule(key=st.sampled_from(["a", "[a]", "b"]), own=st.booleans())
    def release_lock(self, key: str, own: bool) -> None:
        mem_token = self.mem_tokens.get(key, "0" * 32) if own else "f" * 32
        red_token = self.redis_tokens.get(key, "0" * 32) if own else "f" * 32
        mem = memory_call(lambda: self.mem.release_lock(key, mem_token))
        red = redis_call(lambda: self.release(keys=[self.k(f"lock:{key}")], args=[red_token]) == 1)
        self.check(f"release_lock({key!r}, own={own})", mem, red)

    @rule(key=st.sampled_from(["a", "[a]", "b"]), own=st.booleans(), ttl_ms=LOCK_TTL_MS)
    def extend_lock(self, key: str, own: bool, ttl_ms: int) -> None:
        mem_token = self.mem_tokens.get(key, "0" * 32) if own else "f" * 32
        red_token = self.redis_tokens.get(key, "0" * 32) if own else "f" * 32
        mem = memory_call(lambda: self.mem.extend_lock(key, mem_token, ttl_ms))
        red = redis_call(
            lambda: self.extend(keys=[self.k(f"lock:{key}")], args=[red_token, ttl_ms]) == 1
        )
        self.check(f"extend_lock({key!r}, own={own}, {ttl_ms})", mem, red)

    # --- whole keyspace ------------------------------------------------------------------------

    @precondition(lambda self: self.steps >= 20)  # rarely: it empties everything
    @rule()
    def flush(self) -> None:
        def redis_flush() -> int:
            found = list(self.r.scan_iter(self.prefix + "*", 1000))
            return int(self.r.delete(*found)) if found else 0

        mem = memory_call(self.mem.flush)
        red = redis_call(redis_flush)
        self.check("flush()", mem, red)

    @invariant()
    def same_key_count(self) -> None:
        mem = len(self.mem.keys("*"))
        red = len(self.r.keys(self.prefix + "*"))
        assert mem == red, f"key count: memory {mem}, redis {red}"

    def teardown(self) -> None:
        found = list(self.r.scan_iter(self.prefix + "*", 1000))
        if found:
            self.r.delete(*found)
        self.mem.close()


@pytest.fixture
def parity_client(redis_server: Any) -> Iterator[redis.Redis]:
    global _client
    with redis_server.client(decode_responses=False) as client:
        _client = client
        try:
            yield client
        finally:
            _client = None


def test_memory_store_and_redis_agree(parity_client: redis.Redis) -> None:
    run_state_machine_as_test(
        Parity,
        settings=settings(
            max_examples=int(__import__("os").environ.get("PARITY_EXAMPLES", "60")),
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_every_glob_pattern_matches_like_redis(redis_client: redis.Redis) -> None:
    """Each hostile key against each hostile pattern: `keys` and `del_pattern` as Redis KEYS."""
    store = MemoryStore(cleanup_interval_seconds=None)
    for key in KEYS:
        store.set(key, b"1")
        redis_client.set(key, "1")
    mismatches = []
    for pattern in [*GLOB_PATTERNS, *KEYS]:
        mem = sorted(store.keys(pattern))
        red = sorted(redis_client.keys(pattern))
        if mem != red:
            mismatches.append((pattern, mem, red))
    assert mismatches == []


def test_every_counter_value_increments_like_redis(redis_client: redis.Redis) -> None:
    """`incrby` over each stored value and boundary amount: result or error class and text."""
    store = MemoryStore(cleanup_interval_seconds=None)
    mismatches = []
    for value in RAW_VALUES:
        for amount in [0, 1, -1, 2**63 - 1, -(2**63)]:
            store.set("n", value)
            redis_client.set("n", value)
            mem = memory_call(lambda a=amount: store.incrby("n", a))  # type: ignore[misc]
            red = redis_call(lambda a=amount: redis_client.incrby("n", a), amount=amount)  # type: ignore[misc]
            if mem != red:
                mismatches.append((value, amount, mem, red))
    assert mismatches == []


@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_counter"])
def test_a_limit_key_keeps_its_algorithm_on_both_backends(cache: Any, algorithm: str) -> None:
    """Found by comparing the backends: the class agrees (WrongTypeError), the texts differ."""
    assert cache.hit_rate_limit("rl", 5, 60).allowed  # sliding_log state
    with pytest.raises(WrongTypeError):
        cache.hit_rate_limit("rl", 5, 60, algorithm=algorithm)
    assert cache.hit_rate_limit("rl", 5, 60).remaining == 3  # the failed call changed nothing
