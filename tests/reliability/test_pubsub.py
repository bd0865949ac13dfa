"""Pub/sub invalidation between two processes (item 13): propagation, and no stale read after the
subscriber's connection is killed (`CLIENT KILL TYPE pubsub`) or cut off by the output-buffer
limit (`client-output-buffer-limit pubsub 1kb 1kb 0` and a flood).

The protocol (a local cache invalidated by messages, flushed by `on_resubscribe`) and the
definition of a stale read are in `_pubsub_worker.py`. This process is the writer: each round
sets every key on Redis and publishes one invalidation per key; a disruption is followed at once
by a round, so its first writes fall in the listener's reconnect gap and their messages are lost.
The control run without `on_resubscribe` shows the stale reads that the hook prevents.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _servers import RedisServer
from cachebolt import CacheConfig, CacheService

from ._figures import figure, size
from ._pubsub_worker import CHANNEL, subscriber

PREFIX = "ps:"
KEYS = [f"item:{i}" for i in range(100)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as private:
        yield private


def _pubsub_ids(admin: redis.Redis) -> set[int]:
    return {int(c["id"]) for c in admin.client_list(_type="pubsub")}


def _wait_resubscribed(admin: redis.Redis, before: set[int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ids = _pubsub_ids(admin)
        numsub = dict(admin.pubsub_numsub(PREFIX + CHANNEL))
        if ids and not ids & before and numsub.get(PREFIX + CHANNEL) == 1:
            return
        time.sleep(0.005)
    raise AssertionError("the subscriber did not subscribe again within 10 s")


def _run(server: RedisServer, *, use_hook: bool, kills: int, floods: int) -> dict[str, Any]:
    config = CacheConfig(enabled=True, host=server.host, port=server.port, key_prefix=PREFIX)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=subscriber, args=(config, KEYS, child, use_hook))
    process.start()
    barrier = 0
    try:
        assert parent.poll(60) and parent.recv() == "ready"
        with CacheService(config) as writer, server.client() as admin:

            def write_round(tag: int) -> None:
                for key in KEYS:
                    writer.set(key, tag)
                    writer.publish(CHANNEL, {"k": key, "t": time.monotonic()})

            def sync() -> None:
                # Published until the subscriber has it: right after a lost connection Redis
                # may count a subscriber that is about to go (redis-py's own reconnect of the
                # failed PubSub resubscribes it before the listener closes it).
                nonlocal barrier
                barrier += 1
                parent.send(("wait", barrier))
                deadline = time.monotonic() + 30
                while not parent.poll(0.1):
                    assert time.monotonic() < deadline, f"barrier {barrier} never arrived"
                    writer.publish(CHANNEL, {"barrier": barrier})
                assert parent.recv() == "ok"

            tag = 0
            for _ in range(3):  # steady state: every message arrives
                tag += 1
                write_round(tag)
                sync()
            for _ in range(kills):
                before = _pubsub_ids(admin)
                admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                tag += 1
                write_round(tag)  # its first messages fall in the reconnect gap
                _wait_resubscribed(admin, before)
                sync()
            for _ in range(floods):
                before = _pubsub_ids(admin)
                admin.config_set("client-output-buffer-limit", "pubsub 1kb 1kb 0")
                try:
                    with admin.pipeline(transaction=False) as pipe:
                        for _ in range(64):
                            pipe.publish(PREFIX + CHANNEL, '{"flood": "' + "x" * 16_384 + '"}')
                        pipe.execute()
                    tag += 1
                    write_round(tag)
                finally:
                    admin.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")
                _wait_resubscribed(admin, before)
                sync()
            parent.send(("check",))
            assert parent.poll(60)
            result: dict[str, Any] = parent.recv()
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    return result


def _p99_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[int(len(ordered) * 0.99)] * 1000, 2) if ordered else 0.0


def test_invalidation_survives_killed_and_cut_off_subscribers(server: RedisServer) -> None:
    kills, floods = size(3, 20), size(2, 10)
    result = _run(server, use_hook=True, kills=kills, floods=floods)
    figure(
        "pubsub.invalidation",
        messages=len(result["latencies"]),
        propagation_p99_ms=_p99_ms(result["latencies"]),
        kills=kills,
        floods=floods,
        resubscribes=result["flushes"],
        stale_reads=len(result["stale"]),
    )
    assert result["stale"] == []
    assert result["flushes"] == kills + floods  # one on_resubscribe per lost connection


def test_without_on_resubscribe_the_missed_messages_leave_stale_reads(server: RedisServer) -> None:
    """The control: the same run without the hook keeps values whose invalidation was missed."""
    result = _run(server, use_hook=False, kills=2, floods=1)
    figure("pubsub.invalidation[no hook]", stale_reads=len(result["stale"]))
    assert result["flushes"] == 0
    assert len(result["stale"]) > 0
