"""Each hot-path call of the service is one command to Redis (one round trip), nothing more.

Seen by the server itself (MONITOR, which also shows what a script runs, tagged "lua": those
are left out), on both flavours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
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
