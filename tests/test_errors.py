"""Bad arguments raise clear errors and change nothing, on both services."""

from __future__ import annotations

import math
import threading
from typing import Any

import cachebolt
import pytest
from cachebolt import CacheError, SerializationError, WrongTypeError
from cachebolt._core import MemoryStore

BAD_TTLS = [
    (0, ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    (math.nan, ValueError),
    (math.inf, ValueError),
    (-math.inf, ValueError),
    (True, TypeError),
    (False, TypeError),
    ("10", TypeError),
    ([10], TypeError),
]


def test_every_exception_is_a_cache_error() -> None:
    for name in cachebolt.exceptions.__all__:
        assert issubclass(getattr(cachebolt, name), CacheError), name


class Unencodable:
    pass


@pytest.mark.parametrize(
    "value", [Unencodable(), {1, 2}, b"bytes", 2**64, {"a": object()}, {(1, 2): "tuple key"}]
)
def test_unencodable_value_raises_and_stores_nothing(cache: Any, value: Any) -> None:
    cache.set("kept", "old", ttl=100)
    with pytest.raises(SerializationError) as info:
        cache.set("kept", value, ttl=5)
    assert info.value.key == "kept"
    assert "'kept'" in str(info.value)
    assert cache.get("kept") == "old" and cache.ttl("kept") == 100
    with pytest.raises(SerializationError):
        cache.set("new", value)
    assert cache.get("new", "absent") == "absent"


@pytest.mark.parametrize(("ttl", "error"), BAD_TTLS)
def test_bad_ttl_raises_and_changes_nothing(cache: Any, ttl: Any, error: type[Exception]) -> None:
    cache.set("k", "old", ttl=100)
    with pytest.raises(error):
        cache.set("k", "new", ttl=ttl)
    with pytest.raises(error):
        cache.expire("k", ttl)
    with pytest.raises(error):
        cache.get_or_set("other", ttl, lambda: pytest.fail("fn must not run"))
    assert cache.get("k") == "old" and cache.ttl("k") == 100
    assert cache.get("other") is None


@pytest.mark.parametrize(
    ("key", "error"), [("", ValueError), (1, TypeError), (b"k", TypeError), (None, TypeError)]
)
def test_bad_keys_are_refused_everywhere(
    cache: Any, store: MemoryStore, key: Any, error: type[Exception]
) -> None:
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("get", (key,)),
        ("set", (key, 1)),
        ("set", (key, 1, 10)),
        ("get_or_set", (key, 10, lambda: 1)),
        ("delete", (key,)),
        ("ttl", (key,)),
        ("expire", (key, 10)),
        ("incr", (key,)),
        ("incrby", (key, 2)),
        ("decr", (key,)),
        ("sadd", (key, "m")),
        ("srem", (key, "m")),
        ("sismember", (key, "m")),
        ("smembers", (key,)),
        ("scard", (key,)),
        ("hset", (key, "f", "v")),
        ("hget", (key, "f")),
        ("hgetall", (key,)),
        ("hdel", (key, "f")),
        ("acquire_lock", (key, 1000)),
        ("release_lock", (key, "token")),
        ("extend_lock", (key, "token", 1000)),
        ("check_rate_limit", (key, 1, 10)),
        ("hit_rate_limit", (key, 1, 10)),
        ("publish", (key, "message")),
        ("subscribe", (key, lambda message: None)),
        ("del_pattern", (key,)),
    ]
    for name, args in calls:
        with pytest.raises(error):
            getattr(cache, name)(*args)
    assert store.keys() == []
    assert cache.stats()["keys"] == 0


def test_bad_lock_arguments(cache: Any) -> None:
    for ttl_ms, error in [(0, ValueError), (-5, ValueError), (True, TypeError), ("1", TypeError)]:
        with pytest.raises(error):
            cache.acquire_lock("l", ttl_ms)
        with pytest.raises(error), cache.lock("l", ttl_ms):
            pytest.fail("body must not run")
    token = cache.acquire_lock("l", 1000)
    with pytest.raises(ValueError):
        cache.extend_lock("l", token, 0)
    for wait, error in [(-1, ValueError), (math.nan, ValueError), (True, TypeError)]:
        with pytest.raises(error), cache.lock("other", 1000, wait_seconds=wait):
            pytest.fail("body must not run")
    assert cache.acquire_lock("other", 1000) is not None  # nothing was held by the failures
    assert cache.release_lock("l", token) is True


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"limit": 0}, ValueError),
        ({"limit": -1}, ValueError),
        ({"limit": True}, TypeError),
        ({"limit": 1.5}, TypeError),
        ({"window_seconds": 0}, ValueError),
        ({"window_seconds": -1}, ValueError),
        ({"window_seconds": math.nan}, ValueError),
        ({"window_seconds": True}, TypeError),
        ({"cost": -1}, ValueError),
        ({"cost": 1.0}, TypeError),
        ({"algorithm": "token_bucket"}, ValueError),
        ({"algorithm": ""}, ValueError),
    ],
)
def test_bad_rate_limit_arguments_change_nothing(
    cache: Any, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    args = {"limit": 2, "window_seconds": 60, **kwargs}
    limit, window = args.pop("limit"), args.pop("window_seconds")
    with pytest.raises(error):
        cache.hit_rate_limit("r", limit, window, **args)
    if "cost" not in kwargs and "algorithm" not in kwargs:
        with pytest.raises(error):
            cache.check_rate_limit("r", limit, window)
    peek = cache.hit_rate_limit("r", 2, 60, cost=0)
    assert peek.allowed and peek.remaining == 2
    assert cache.stats()["rate_limit_denied"] == 0


@pytest.mark.parametrize("members", [(), (1,), ("a", None), (b"a",)])
def test_bad_set_members_change_nothing(cache: Any, members: tuple[Any, ...]) -> None:
    cache.sadd("s", "a")
    with pytest.raises(TypeError):
        cache.sadd("s", *members)
    with pytest.raises(TypeError):
        cache.srem("s", *members)
    assert cache.smembers("s") == {"a"}


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}, b"x", object()])
def test_bad_hash_values_change_nothing(cache: Any, value: Any) -> None:
    cache.hset("h", "f", "old")
    with pytest.raises(TypeError):
        cache.hset("h", "f", value)
    with pytest.raises(TypeError):
        cache.hset("h", "g", value)
    assert cache.hgetall("h") == {"f": "old"}


def test_bad_hash_fields(cache: Any) -> None:
    with pytest.raises(TypeError):
        cache.hset("h", 1, "v")
    with pytest.raises(TypeError):
        cache.hdel("h")
    with pytest.raises(TypeError):
        cache.hdel("h", 1)
    assert cache.hgetall("h") == {}


@pytest.mark.parametrize("amount", [True, 1.0, "1", None])
def test_bad_incrby_amount(cache: Any, amount: Any) -> None:
    cache.set("n", 5)
    with pytest.raises(TypeError):
        cache.incrby("n", amount)
    assert cache.get("n") == 5


def test_wrong_type_errors_change_nothing(cache: Any) -> None:
    cache.hset("h", "f", "v")
    cache.sadd("s", "m")
    cache.set("str", "text")
    with pytest.raises(WrongTypeError):
        cache.sadd("h", "x")
    with pytest.raises(WrongTypeError):
        cache.hset("s", "f", "v")
    with pytest.raises(WrongTypeError):
        cache.sadd("str", "x")
    with pytest.raises(WrongTypeError):
        cache.hget("str", "f")
    with pytest.raises(WrongTypeError):
        cache.get("h")
    assert cache.hgetall("h") == {"f": "v"}
    assert cache.smembers("s") == {"m"}
    assert cache.get("str") == "text"


def test_bad_callables(cache: Any) -> None:
    with pytest.raises(TypeError):
        cache.get_or_set("k", 10, "not callable")
    with pytest.raises(TypeError):
        cache.subscribe("ch", "not callable")
    assert cache.get("k") is None
    assert cache.publish("ch", 1) == 0


def test_unencodable_message_delivers_nothing(cache: Any) -> None:
    received: list[Any] = []
    done = threading.Event()

    def on_message(message: Any) -> None:
        received.append(message)
        if message == "last":
            done.set()

    cache.subscribe("ch", on_message)
    with pytest.raises(SerializationError) as info:
        cache.publish("ch", {"when": object()})
    assert info.value.key == "ch"
    assert cache.publish("ch", "last") == 1
    assert done.wait(10)
    assert received == ["last"]
