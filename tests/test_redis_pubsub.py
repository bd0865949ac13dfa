"""Pub/sub over Redis: across services, JSON on prefixed channels, resubscribe, outages.

`svc` builds a `CacheService` or an `AsyncCacheService` behind `SyncProxy` (its callbacks run on
the proxy's loop thread), so each body runs on both services. Waits are bounded polls.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest
from _servers import RedisServer
from cachebolt import CacheConfig
from conftest import ServiceFactory

BOUND = 5.0


def config_for(server: RedisServer, prefix: str = "ps:") -> CacheConfig:
    return CacheConfig(
        enabled=True,
        host=server.host,
        port=server.port,
        connect_timeout_ms=500,
        command_timeout_ms=500,
        key_prefix=prefix,
    )


class Inbox:
    """A callback that records messages; `wait_for(n)` polls until n arrived."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[Any] = []

    def __call__(self, message: Any) -> None:
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_for(self, n: int, timeout: float = BOUND) -> list[Any]:
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.count()} of {n} messages within {timeout} s")
            time.sleep(0.005)
        with self.lock:
            return list(self.messages)


def publish_until(publisher: Any, channel: str, inbox: Inbox, timeout: float = BOUND) -> float:
    """Publish numbered messages until `inbox` has one; the seconds it took."""
    started = time.monotonic()
    sent = 0
    while inbox.count() == 0:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"nothing received within {timeout} s")
        publisher.publish(channel, {"n": sent})
        sent += 1
        time.sleep(0.02)
    return time.monotonic() - started


def test_delivery_across_services_on_prefixed_channels(
    svc: ServiceFactory, redis_server: RedisServer, redis_client: Any
) -> None:
    listener, publisher = svc(config_for(redis_server)), svc(config_for(redis_server))
    inbox = Inbox()
    listener.subscribe("news", inbox)
    assert publisher.publish("news", {"id": 1, "tags": ("a",)}) == 1  # one other service
    assert inbox.wait_for(1) == [{"id": 1, "tags": ["a"]}]
    # On the wire: JSON on "<prefix><channel>", readable by any client.
    with redis_server.client() as raw, raw.pubsub() as pubsub:
        pubsub.subscribe("ps:news")
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
        publisher.publish("news", [1, 2])
        message = pubsub.get_message(timeout=2)
        assert message is not None and json.loads(message["data"]) == [1, 2]
    assert inbox.wait_for(2)[1] == [1, 2]


def test_other_prefixes_do_not_hear(
    svc: ServiceFactory, redis_server: RedisServer, redis_client: Any
) -> None:
    mine, theirs = svc(config_for(redis_server, "a:")), svc(config_for(redis_server, "b:"))
    inbox = Inbox()
    mine.subscribe("ch", inbox)
    assert theirs.publish("ch", 1) == 0
    assert mine.publish("ch", 2) == 1
    assert inbox.wait_for(1) == [2]


def test_publish_counts_own_subscriptions_and_other_services(
    svc: ServiceFactory, redis_server: RedisServer, redis_client: Any
) -> None:
    first, second = svc(config_for(redis_server)), svc(config_for(redis_server))
    a, b, c = Inbox(), Inbox(), Inbox()
    first.subscribe("ch", a)
    first.subscribe("ch", b)
    second.subscribe("ch", c)
    assert first.publish("ch", "x") == 3  # own 2 subscriptions + the other service
    for inbox in (a, b, c):
        assert inbox.wait_for(1) == ["x"]
    subscription = second.subscribe("other", Inbox())
    assert first.publish("other", 1) == 1
    subscription.unsubscribe()  # UNSUBSCRIBE goes out at the listener's next turn (<= 50 ms)
    deadline = time.monotonic() + BOUND
    while first.publish("other", 1) != 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_failing_callback_does_not_stop_the_listener(
    svc: ServiceFactory,
    redis_server: RedisServer,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="cachebolt")
    listener, publisher = svc(config_for(redis_server)), svc(config_for(redis_server))

    def failing(message: Any) -> None:
        raise RuntimeError(f"boom {message}")

    inbox = Inbox()
    listener.subscribe("ch", failing)
    listener.subscribe("ch", inbox)
    for n in range(3):
        publisher.publish("ch", n)
    assert inbox.wait_for(3) == [0, 1, 2]
    deadline = time.monotonic() + BOUND
    while sum("boom" in r.getMessage() or r.exc_info is not None for r in caplog.records) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_resubscribe_after_client_kill(
    svc: ServiceFactory,
    redis_server: RedisServer,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cachebolt")
    listener, publisher = svc(config_for(redis_server)), svc(config_for(redis_server))
    inbox = Inbox()
    listener.subscribe("ch", inbox)
    killed = redis_client.client_kill_filter(_type="pubsub")
    assert killed >= 1
    took = publish_until(publisher, "ch", inbox)
    print(f"\nresubscribed {took * 1000:.0f} ms after CLIENT KILL TYPE pubsub")
    assert any("pub/sub reconnected" in r.getMessage() for r in caplog.records)
    assert listener.is_redis_available() is True  # the data connection was not touched


def test_resubscribe_after_a_server_restart_and_local_delivery_meanwhile(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    listener, publisher = svc(config_for(private_redis)), svc(config_for(private_redis))
    inbox, local = Inbox(), Inbox()
    listener.subscribe("ch", inbox)
    publisher.subscribe("ch", local)
    publisher.publish("ch", "before")
    assert inbox.wait_for(1) == ["before"] and local.wait_for(1) == ["before"]

    private_redis.kill()
    # While Redis is down a publish reaches this service's own subscribers only.
    publisher.publish("ch", "down")  # the call that finds Redis dead, served locally
    assert publisher.publish("ch", "local") == 1
    assert local.wait_for(3)[1:] == ["down", "local"]
    assert inbox.count() == 1

    private_redis.restart()
    deadline = time.monotonic() + BOUND
    while not (listener.is_redis_available() and publisher.is_redis_available()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    while inbox.count() < 2:
        assert time.monotonic() - started < BOUND, "listener did not resubscribe"
        publisher.publish("ch", "after")
        time.sleep(0.02)
    assert inbox.messages[1] == "after"


def test_subscribe_while_redis_is_down_then_recovers(
    svc: ServiceFactory, private_redis: RedisServer
) -> None:
    publisher = svc(config_for(private_redis))
    listener = svc(config_for(private_redis))
    listener.set("trip", 1)
    private_redis.kill()
    listener.set("trip", 2)  # the breaker opens
    inbox = Inbox()
    started = time.monotonic()
    listener.subscribe("late", inbox)  # no wait for a confirmation while Redis is down
    assert time.monotonic() - started < 0.5
    private_redis.restart()
    deadline = time.monotonic() + BOUND
    while not publisher.is_redis_available():
        publisher.get("x")  # the publisher learns of the restart from its own calls
        assert time.monotonic() < deadline
        time.sleep(0.01)
    publish_until(publisher, "late", inbox)
