"""Data that cachebolt did not write, at the keys it uses: a defined outcome for each command
family, never a raw error or stored text in a message.

Another type at a lock key is a held lock (None, `lock_contended` counted), and a key there
without TTL gets the lock's TTL, so it ends; at a rate-limit key it is a `WrongTypeError` naming
the key, on memory, Redis and the cluster. Stored bytes that are not JSON make `get` raise and
`get_or_set` compute and store a fresh value. Redis can also hold state of the right type that
no script wrote (fields that are not integers, scores of "inf", notes that do not add up): every
rate-limit script refuses it the same way, and a planted log without TTL denies for at most one
window.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from cachebolt import (
    CacheConfig,
    LockNotAcquired,
    SerializationError,
    WrongTypeError,
)
from conftest import Clock, ServiceFactory
from test_domain_limits import make_limiter

ALGORITHMS = ("sliding_log", "fixed_window", "sliding_counter")
EVIL = "\x1b[31mcall +1 900 SCAM"


def plant_other_types(cache: Any, name: str) -> dict[str, Any]:
    """A hash, a set and a JSON string at `<name>:h`, `<name>:s`, `<name>:t`; what each holds."""
    cache.hset(f"{name}:h", "f", EVIL)
    cache.sadd(f"{name}:s", EVIL)
    cache.set(f"{name}:t", EVIL)
    return {f"{name}:h": {"f": EVIL}, f"{name}:s": {EVIL}, f"{name}:t": EVIL}


def read_back(cache: Any, key: str, like: Any) -> Any:
    if isinstance(like, dict):
        return cache.hgetall(key)
    if isinstance(like, set):
        return cache.smembers(key)
    return cache.get(key)


def test_a_lock_key_holding_another_value_is_held(cache: Any) -> None:
    planted = plant_other_types(cache, "lock:job")
    for key, value in planted.items():
        name = key.removeprefix("lock:")
        assert cache.acquire_lock(name, 5000) is None
        assert cache.acquire_fenced_lock(name, 5000) is None
        assert cache.release_lock(name, "0" * 32) is False
        assert cache.extend_lock(name, "0" * 32, 5000) is False
        with pytest.raises(LockNotAcquired), cache.lock(name, 5000):
            pytest.fail("the body must not run")
        assert read_back(cache, key, value) == value  # untouched
    assert cache.stats()["lock_contended"] == 9


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_limit_key_holding_another_value_names_the_key(cache: Any, algorithm: str) -> None:
    planted = plant_other_types(cache, "ratelimit:k")
    for key, value in planted.items():
        name = key.removeprefix("ratelimit:")
        with pytest.raises(WrongTypeError, match=rf"^rate limit '{name}': WRONGTYPE") as caught:
            cache.hit_rate_limit(name, 5, 60, algorithm=algorithm)
        assert "SCAM" not in str(caught.value)
        if algorithm == "sliding_log":
            with pytest.raises(WrongTypeError, match=rf"^rate limit '{name}'"):
                cache.check_rate_limit(name, 5, 60)
        assert read_back(cache, key, value) == value
    assert cache.stats()["rate_limit_allowed"] == cache.stats()["rate_limit_denied"] == 0


def test_a_domain_limit_over_foreign_state_records_nothing(cache: Any, store: Any) -> None:
    limiter = make_limiter(cache, store)
    cache.hset("ratelimit:{otp}:phone:+15550100100", "f", EVIL)
    with pytest.raises(WrongTypeError, match=r"^one of the rate limits \[") as caught:
        limiter.check_otp("+15550100100", "203.0.113.7")
    assert "{otp}:phone:+15550100100" in str(caught.value) and "SCAM" not in str(caught.value)
    assert not [k for k in store.keys("*") if ":ip:" in k]  # the IP's quota was not touched
    assert limiter.stats()["allowed"] == limiter.stats()["denied"] == 0


def test_get_of_bytes_that_are_not_json_names_the_key_only(cache: Any, store: Any) -> None:
    for raw in [b"\xff\xfe", b'{"a": "\x1b[2J', b"SCAM \x1b[31m", b"\x00" * 64]:
        store.set("v", raw)
        with pytest.raises(SerializationError, match=r"^the value stored at 'v' is not") as caught:
            cache.get("v")
        assert caught.value.key == "v"
        assert "\x1b" not in str(caught.value) and "SCAM" not in str(caught.value)


FOREIGN_VALUES = [b"\xff\xfe", b"SCAM \x1b[31m", b"NaN", b"[1, NaN]", b"Infinity", b'{"a": ']


@pytest.mark.parametrize("raw", FOREIGN_VALUES)
def test_get_or_set_replaces_bytes_that_are_not_json(
    cache: Any, store: Any, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    store.set("v\x1b", raw)
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"fresh": len(calls)}

    assert cache.get_or_set("v\x1b", 60, compute) == {"fresh": 1}
    assert cache.get_or_set("v\x1b", 60, compute) == {"fresh": 1}  # stored: a hit
    assert cache.get("v\x1b") == {"fresh": 1}
    assert 0 < cache.ttl("v\x1b") <= 60
    assert cache.stats()["decode_errors"] == 1
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("the value stored at 'v\\x1b' is not valid JSON, recomputed")
    assert "\x1b" not in warning and "SCAM" not in warning


@pytest.mark.parametrize("plant", ["string", "hash", "set"])
@pytest.mark.parametrize("fenced", [False, True])
def test_a_lock_key_without_ttl_gets_the_lock_ttl(
    cache: Any, store: Any, clock: Clock, plant: str, fenced: bool
) -> None:
    if plant == "string":
        store.set("lock:job", b"planted")
    elif plant == "hash":
        cache.hset("lock:job", "f", EVIL)
    else:
        cache.sadd("lock:job", EVIL)
    assert cache.ttl("lock:job") == -1
    acquire = cache.acquire_fenced_lock if fenced else cache.acquire_lock
    assert acquire("job", 5000) is None
    assert 0 < cache.ttl("lock:job") <= 5
    clock.advance(1)
    assert acquire("job", 60_000) is None  # a key with a TTL keeps it
    assert 0 < cache.ttl("lock:job") <= 4
    clock.advance(4)
    assert acquire("job", 5000) is not None


# --- Redis: the right type, not written by a script -------------------------------------------

NOTE = "{:016d}:1:0:1:1"  # a sliding-log member as rate_limit_sliding_log.lua writes it
PLANTED_STATE: dict[str, list[tuple[str, Any]]] = {
    "sliding_log": [
        ("zset", {NOTE.format(1): "inf"}),
        ("zset", {NOTE.format(1): 1.5}),
        ("zset", {NOTE.format(1): 2.0**60}),  # past 2^53 ms
        ("zset", {EVIL: 2.0**41}),
        ("zset", {"9" * 30 + ":1:0:1:1": 2.0**41}),
        # The oldest entry's running total above the newest's: notes that do not add up.
        ("zset", {"0000000000000009:1:0:1:1": 2.0**41 - 1,
                  "0000000000000001:1:90000:1:1": 2.0**41}),
    ],
    "fixed_window": [
        ("hash", {"alg": EVIL, "start": 0, "width": 1000, "count": 1, "last": 0}),
        ("hash", {"alg": "fixed_window", "start": "abc", "width": 1000, "count": 1, "last": 0}),
        ("hash", {"alg": "fixed_window", "start": 0, "width": 1000, "count": "nan", "last": 0}),
        ("hash", {"alg": "fixed_window", "start": 0, "width": 1000, "count": 1, "last": "inf"}),
        ("hash", {"alg": "fixed_window", "start": 0, "width": "1e18", "count": 1, "last": 0}),
        ("hash", {"alg": "fixed_window", "start": 0, "width": 1000, "count": -1, "last": 0}),
        ("hash", {"alg": "fixed_window", "start": 0}),
    ],
    "sliding_counter": [
        ("hash", {"alg": EVIL, "start": 0, "width": 1000, "prev": 0, "curr": 1, "last": 0}),
        ("hash", {"alg": "sliding_counter", "start": 0, "width": 1000, "prev": "1e400",
                  "curr": 1, "last": 0}),
        ("hash", {"alg": "sliding_counter", "start": 0, "width": 1000, "prev": 0,
                  "curr": "9" * 20, "last": 0}),
        ("hash", {"alg": "sliding_counter", "start": "0x10", "width": 1000, "prev": 0,
                  "curr": 1, "last": 0}),
    ],
}  # fmt: skip
CASES = [(alg, kind, state) for alg, planted in PLANTED_STATE.items() for kind, state in planted]


@pytest.mark.parametrize(("algorithm", "kind", "state"), CASES)
def test_planted_limit_state_is_refused_by_every_script(
    svc: ServiceFactory,
    redis_config: CacheConfig,
    redis_client: redis.Redis,
    algorithm: str,
    kind: str,
    state: Any,
) -> None:
    cache = svc(redis_config)
    if kind == "zset":
        redis_client.zadd("ratelimit:k", state)
    else:
        redis_client.hset("ratelimit:k", mapping=state)
    with pytest.raises(WrongTypeError, match=r"^rate limit 'k': WRONGTYPE") as caught:
        cache.hit_rate_limit("k", 5, 60, algorithm=algorithm)
    assert "SCAM" not in str(caught.value)
    # The multi-key scripts read the same state, and refuse it before writing any key.
    with pytest.raises(WrongTypeError, match=r"^one of the rate limits \['other', 'k'\]"):
        cache.hit_rate_limits([("other", 5, 60), ("k", 5, 60)], algorithm=algorithm)
    assert redis_client.exists("ratelimit:other") == 0
    assert cache.stats()["rate_limit_allowed"] == 0


@pytest.mark.parametrize("many", [False, True])
def test_a_planted_log_without_ttl_denies_for_one_window_at_most(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: redis.Redis, many: bool
) -> None:
    cache = svc(redis_config)
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    # 1000 units held by one entry stamped now, no TTL: a full log that would never expire.
    redis_client.zadd("ratelimit:k", {"0000000000001000:1000:0:1000:1000": now_ms})
    result = cache.hit_rate_limits([("k", 5, 60)])[0] if many else cache.hit_rate_limit("k", 5, 60)
    assert not result.allowed and 59 < result.retry_after <= 60
    assert 0 < redis_client.pttl("ratelimit:k") <= 60_000
