"""In-process pub/sub: receivers, ordering, failing callbacks, delivery threads and loops."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from typing import Any

import pytest
from cachebolt import AsyncCacheService, CacheService, Subscription


class Inbox:
    """Collects messages; `wait(n)` blocks until n arrived (an Event, never a sleep)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._condition = threading.Condition(self._lock)

    def __call__(self, message: Any) -> None:
        with self._condition:
            self.messages.append(message)
            self.threads.add(threading.current_thread().name)
            self._condition.notify_all()

    def wait(self, count: int) -> list[Any]:
        with self._condition:
            assert self._condition.wait_for(lambda: len(self.messages) >= count, timeout=10)
            return list(self.messages)


def test_publish_reaches_every_subscription(cache: Any) -> None:
    first, second, other = Inbox(), Inbox(), Inbox()
    assert cache.publish("news", "nobody") == 0
    sub1 = cache.subscribe("news", first)
    cache.subscribe("news", second)
    cache.subscribe("other", other)
    assert isinstance(sub1, Subscription) and sub1.channel == "news" and sub1.active
    assert cache.publish("news", {"id": 1, "tags": ("a",)}) == 2
    assert first.wait(1) == [{"id": 1, "tags": ["a"]}]  # JSON-decoded
    assert second.wait(1) == [{"id": 1, "tags": ["a"]}]
    assert cache.publish("other", None) == 1
    assert other.wait(1) == [None]
    assert first.messages[0] is not second.messages[0]  # each callback gets its own copy


def test_messages_arrive_in_publish_order(cache: Any) -> None:
    inbox = Inbox()
    cache.subscribe("ch", inbox)
    for i in range(200):
        assert cache.publish("ch", i) == 1
    assert inbox.wait(200) == list(range(200))


def test_unsubscribe_is_idempotent_and_stops_delivery(cache: Any) -> None:
    gone, staying = Inbox(), Inbox()
    subscription = cache.subscribe("ch", gone)
    cache.subscribe("ch", staying)
    subscription.unsubscribe()
    subscription.unsubscribe()
    assert subscription.active is False
    assert cache.publish("ch", "after") == 1
    assert staying.wait(1) == ["after"]
    assert gone.messages == []


def test_subscription_as_context_manager(cache: Any) -> None:
    inbox = Inbox()
    with cache.subscribe("ch", inbox) as subscription:
        assert cache.publish("ch", 1) == 1
        assert inbox.wait(1) == [1]
    assert subscription.active is False
    assert cache.publish("ch", 2) == 0


def test_failing_callback_is_logged_and_delivery_goes_on(
    cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cachebolt")
    inbox = Inbox()
    failures: list[Any] = []

    def failing(message: Any) -> None:
        failures.append(message)
        raise ValueError(f"bad message {message}")

    cache.subscribe("ch", failing)
    cache.subscribe("ch", inbox)
    assert cache.publish("ch", 1) == 2
    assert cache.publish("ch", 2) == 2
    assert inbox.wait(2) == [1, 2]
    # The failing subscription keeps receiving; wait for its second failure to be logged.
    done = threading.Event()
    cache.subscribe("ch", lambda message: done.set() if message == "flush" else None)
    cache.publish("ch", "flush")
    assert done.wait(10)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "cachebolt"]
    assert failures[:2] == [1, 2]
    assert len(errors) >= 2
    assert errors[0].exc_info is not None and "bad message 1" in str(errors[0].exc_info[1])
    assert "channel 'ch'" in errors[0].getMessage()


def test_sync_callbacks_run_on_one_dispatcher_thread(sync_cache: CacheService) -> None:
    first, second = Inbox(), Inbox()
    sync_cache.subscribe("a", first)
    sync_cache.subscribe("b", second)
    sync_cache.publish("a", 1)
    sync_cache.publish("b", 2)
    first.wait(1)
    second.wait(1)
    assert first.threads == second.threads == {"cachebolt-pubsub"}
    dispatchers = [t for t in threading.enumerate() if t.name == "cachebolt-pubsub"]
    assert len(dispatchers) == 1 and dispatchers[0].daemon
    sync_cache.close()
    dispatchers[0].join(5)
    assert not dispatchers[0].is_alive()


def test_dispatcher_starts_lazily() -> None:
    before = sum(t.name == "cachebolt-pubsub" for t in threading.enumerate())
    with CacheService() as cache:
        cache.publish("ch", 1)
        assert sum(t.name == "cachebolt-pubsub" for t in threading.enumerate()) == before


def test_close_delivers_what_was_published(sync_cache: CacheService) -> None:
    inbox = Inbox()
    sync_cache.subscribe("ch", inbox)
    for i in range(50):
        sync_cache.publish("ch", i)
    sync_cache.close()
    assert inbox.messages == list(range(50))


def test_sync_service_refuses_async_callbacks(sync_cache: CacheService) -> None:
    async def callback(message: Any) -> None:
        pass

    with pytest.raises(TypeError, match="AsyncCacheService"):
        sync_cache.subscribe("ch", callback)
    assert sync_cache.publish("ch", 1) == 0


async def test_async_callbacks_run_on_the_subscribing_loop_in_order(
    async_cache: AsyncCacheService,
) -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []
    loops: set[int] = set()
    done = asyncio.Event()

    async def slow_callback(message: int) -> None:
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(random.random() / 1000)  # awaits between messages keep their order
        received.append(message)
        if message == 49:
            done.set()

    plain: list[int] = []
    await async_cache.subscribe("ch", slow_callback)
    await async_cache.subscribe("ch", plain.append)
    for i in range(50):
        assert await async_cache.publish("ch", i) == 2
    await asyncio.wait_for(done.wait(), 10)
    assert received == list(range(50))
    assert loops == {id(loop)}
    await async_cache.close()
    assert plain == list(range(50))


@pytest.mark.memory_only(reason="a redis.asyncio client is bound to the loop that connected it")
async def test_async_publish_from_another_thread(async_cache: AsyncCacheService) -> None:
    got = asyncio.Event()
    received: list[Any] = []

    def callback(message: Any) -> None:
        received.append((message, threading.current_thread() is threading.main_thread()))
        got.set()

    await async_cache.subscribe("ch", callback)
    count = await asyncio.to_thread(asyncio.run, async_cache.publish("ch", "hi"))
    assert count == 1
    await asyncio.wait_for(got.wait(), 10)
    assert received == [("hi", True)]  # delivered on the subscribing loop (the main thread)


async def test_async_failing_callback_is_logged(
    async_cache: AsyncCacheService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cachebolt")
    done = asyncio.Event()

    async def failing(message: Any) -> None:
        raise RuntimeError("async failure")

    await async_cache.subscribe("ch", failing)
    await async_cache.subscribe("ch", lambda message: done.set())
    await async_cache.publish("ch", 1)
    await asyncio.wait_for(done.wait(), 10)
    await async_cache.close()  # drains the failing subscription's queue
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "async failure" in str(errors[0].exc_info[1])  # type: ignore[index]
