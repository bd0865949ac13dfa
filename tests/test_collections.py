"""Sets and hashes, on both services."""

from __future__ import annotations

from typing import Any

from conftest import Clock


def test_sets(cache: Any) -> None:
    assert cache.sadd("online", "ada", "bob") == 2
    assert cache.sadd("online", "bob", "cy", "cy") == 1
    assert cache.scard("online") == 3
    assert cache.sismember("online", "ada") is True
    assert cache.sismember("online", "zed") is False
    assert cache.sismember("missing", "ada") is False
    members = cache.smembers("online")
    assert members == {"ada", "bob", "cy"} and isinstance(members, set)
    assert cache.srem("online", "ada", "zed") == 1
    assert cache.smembers("online") == {"bob", "cy"}


def test_emptied_set_disappears(cache: Any) -> None:
    cache.sadd("s", "a", "b")
    assert cache.srem("s", "a", "b") == 2
    assert cache.scard("s") == 0
    assert cache.smembers("s") == set()
    assert cache.ttl("s") == -2
    assert cache.delete("s") is False


def test_missing_set_reads_empty(cache: Any) -> None:
    assert cache.smembers("nope") == set()
    assert cache.scard("nope") == 0
    assert cache.srem("nope", "a") == 0


def test_sets_expire(cache: Any, clock: Clock) -> None:
    cache.sadd("s", "a")
    assert cache.expire("s", 5) is True
    clock.advance(5)
    assert cache.sismember("s", "a") is False


def test_hashes(cache: Any) -> None:
    assert cache.hset("user:42", "name", "Ada") == 1
    assert cache.hset("user:42", "name", "Ada L.") == 0
    assert cache.hset("user:42", "visits", 3) == 1
    assert cache.hset("user:42", "score", 2.5) == 1
    assert cache.hset("user:42", "big", 10**30) == 1
    assert cache.hget("user:42", "visits") == "3"
    assert cache.hget("user:42", "score") == "2.5"
    assert cache.hget("user:42", "nope") is None
    assert cache.hget("nope", "f") is None
    assert cache.hgetall("user:42") == {
        "name": "Ada L.",
        "visits": "3",
        "score": "2.5",
        "big": "1" + "0" * 30,
    }
    assert cache.hdel("user:42", "visits", "score", "nope") == 2
    assert cache.hgetall("user:42") == {"name": "Ada L.", "big": "1" + "0" * 30}


def test_emptied_hash_disappears(cache: Any) -> None:
    cache.hset("h", "f", "v")
    assert cache.hdel("h", "f") == 1
    assert cache.hgetall("h") == {}
    assert cache.ttl("h") == -2


def test_hash_fields_and_values_are_text(cache: Any) -> None:
    cache.hset("h", "", "")
    cache.hset("h", "ünï", "🐎")
    assert cache.hgetall("h") == {"": "", "ünï": "🐎"}
