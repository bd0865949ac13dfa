"""Each hot-path call of the service is one command to Redis (one round trip), nothing more.

Seen by the server itself (MONITOR, which also shows what a script runs, tagged "lua": those
are left out), on both flavours.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from cachebolt import CacheConfig
from conftest import ServiceFactory

CALLS: list[tuple[str, Callable[[Any], object], str]] = [
    ("get", lambda c: c.get("k"), "GET"),
    ("set", lambda c: c.set("k", {"v": 1}, 60), "SET"),
    ("check_rate_limit", lambda c: c.check_rate_limit("r", 5, 60), "EVALSHA"),
    ("hit_rate_limit", lambda c: c.hit_rate_limit("r", 5, 60, algorithm="fixed_window"), "EVALSHA"),
    ("acquire_lock", lambda c: c.acquire_lock("job", 10_000), "EVALSHA"),
    ("incr", lambda c: c.incr("n"), "INCRBY"),
    ("sismember", lambda c: c.sismember("s", "a"), "SISMEMBER"),
    ("hget", lambda c: c.hget("h", "f"), "HGET"),
]


def commands_sent(redis_client: Any, action: Callable[[], object]) -> list[str]:
    """The names of the commands clients sent while `action` ran (not those of scripts, nor
    the marker's connection's own: ECHO and a possible handshake)."""
    marker = "end-of-action"
    sent = []
    with redis_client.monitor() as monitor:
        action()
        redis_client.echo(marker)
        while True:
            seen = monitor.next_command()
            origin = (seen.get("client_address"), seen.get("client_port"))
            if seen["command"] == f"ECHO {marker}":
                return [name for name, source in sent if source != origin]
            if seen.get("client_type") != "lua":
                sent.append((seen["command"].split(" ", 1)[0].upper(), origin))


@pytest.mark.parametrize(("name", "call", "command"), CALLS, ids=[c[0] for c in CALLS])
def test_one_command_per_call(
    svc: ServiceFactory,
    redis_config: CacheConfig,
    redis_client: Any,
    name: str,
    call: Callable[[Any], object],
    command: str,
) -> None:
    cache = svc(redis_config)
    call(cache)  # connects and registers the scripts
    assert commands_sent(redis_client, lambda: call(cache)) == [command], name


def test_release_and_extend_are_one_script_each(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: Any
) -> None:
    cache = svc(redis_config)
    # A script's first use loads it (NOSCRIPT, SCRIPT LOAD, EVALSHA again): once per server.
    token = cache.acquire_lock("job", 10_000)
    assert token is not None
    assert cache.extend_lock("job", token, 10_000) and cache.release_lock("job", token)
    token = cache.acquire_lock("job", 10_000)
    assert token is not None
    assert commands_sent(redis_client, lambda: cache.extend_lock("job", token, 10_000)) == [
        "EVALSHA"
    ]
    assert commands_sent(redis_client, lambda: cache.release_lock("job", token)) == ["EVALSHA"]


# One call of every key command the backend has, in an order where each finds what it needs.
KEY_CALLS: list[Callable[[Any], object]] = [
    lambda c: c.ping(),
    lambda c: c.set("k", {"v": 1}, 60),
    lambda c: c.set("k", {"v": 1}),
    lambda c: c.get("k"),
    lambda c: c.ttl("k"),
    lambda c: c.expire("k", 60),
    lambda c: c.delete("k"),
    lambda c: c.incrby("n", 2),
    lambda c: c.sadd("s", "a", "b"),
    lambda c: c.srem("s", "b"),
    lambda c: c.sismember("s", "a"),
    lambda c: c.smembers("s"),
    lambda c: c.scard("s"),
    lambda c: c.hset("h", "f", "v"),
    lambda c: c.hget("h", "f"),
    lambda c: c.hgetall("h"),
    lambda c: c.hdel("h", "f"),
    lambda c: c.release_lock("job", c.acquire_lock("job", 10_000) or ""),
    lambda c: c.extend_lock("job", "token", 10_000),
    lambda c: c.acquire_fenced_lock("fenced", 10_000),
    lambda c: c.check_rate_limit("r", 5, 60),
    lambda c: c.hit_rate_limits([("{u}:a", 5, 60), ("{u}:b", 5, 60)]),
]


def test_key_commands_bypass_redis_py_command_layer(
    svc: ServiceFactory, redis_config: CacheConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a standalone server every key command and script is packed once and written on the
    connection by the backend's transport, never through redis-py's `execute_command`."""
    passed: list[object] = []

    def recording(original: Any) -> Any:
        if inspect.iscoroutinefunction(original):

            async def record_async(self: Any, *args: Any, **options: Any) -> Any:
                passed.append(args[0])
                return await original(self, *args, **options)

            return record_async

        def record(self: Any, *args: Any, **options: Any) -> Any:
            passed.append(args[0])
            return original(self, *args, **options)

        return record

    cache = svc(redis_config)
    cache.get("k")  # connects: PING and INFO (parsed by redis-py)
    for client_class in (redis.Redis, redis.asyncio.Redis):
        monkeypatch.setattr(
            client_class, "execute_command", recording(client_class.execute_command)
        )
    for call in KEY_CALLS:
        call(cache)
    assert cache.hgetall("h") == {} and cache.smembers("s") == {"a"}
    assert passed == []
    assert cache.stats()["fallback_calls"] == 0
