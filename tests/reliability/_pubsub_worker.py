"""The subscriber process of the pub/sub invalidation test (test_pubsub.py), started with spawn.

The invalidation protocol under test (the documented way to keep a local cache in front of Redis
coherent across processes):

* `LocalCache` holds values read from Redis. A writer sets the key on Redis, then publishes
  `{"k": key}` on the channel; the subscriber drops that key from the local cache.
* A read-through fill records the key's generation and the cache's epoch before reading Redis and
  stores the value only if neither moved meanwhile, so an invalidation that arrives during the
  fill cannot be overwritten by the older value it read.
* Redis pub/sub is at most once: when the listener's connection is lost, messages are missed.
  `subscribe(..., on_resubscribe=flush)` is called once Redis confirms the channel again; the
  flush bumps the epoch and empties the local cache, so nothing missed survives.

Stale read (checked at quiescence, after a barrier message that the writer published after its
last write): the local cache answers a key with a value other than what Redis holds.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from cachebolt import CacheConfig, CacheService

CHANNEL = "inv"


class LocalCache:
    """A process-local cache in front of the service, invalidated by messages."""

    def __init__(self, cache: CacheService) -> None:
        self.cache = cache
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {}
        self.generation: dict[str, int] = {}
        self.epoch = 0
        self.flushes = 0

    def get(self, key: str) -> Any:
        with self.lock:
            if key in self.data:
                return self.data[key]
            seen = (self.epoch, self.generation.get(key, 0))
        value = self.cache.get(key)
        with self.lock:
            if (self.epoch, self.generation.get(key, 0)) == seen:
                self.data[key] = value
        return value

    def invalidate(self, key: str) -> None:
        with self.lock:
            self.generation[key] = self.generation.get(key, 0) + 1
            self.data.pop(key, None)

    def flush(self) -> None:
        with self.lock:
            self.epoch += 1
            self.flushes += 1
            self.data.clear()


def subscriber(config: CacheConfig, keys: list[str], conn: Any, use_hook: bool) -> None:
    """Serve the parent's commands over `conn`: ("wait", n) -> "ok" once barrier n arrived;
    ("check",) -> the figures."""
    cache = CacheService(config)
    local = LocalCache(cache)
    latencies: list[float] = []
    barriers: dict[int, threading.Event] = {}
    barrier_lock = threading.Lock()

    def barrier(number: int) -> threading.Event:
        with barrier_lock:
            return barriers.setdefault(number, threading.Event())

    def on_message(message: Any) -> None:
        if "k" in message:
            local.invalidate(message["k"])
            latencies.append(time.monotonic() - message["t"])
        elif "barrier" in message:
            barrier(message["barrier"]).set()

    cache.subscribe(CHANNEL, on_message, on_resubscribe=local.flush if use_hook else None)
    stop = threading.Event()

    def read() -> None:
        rng = random.Random()
        while not stop.is_set():
            local.get(rng.choice(keys))
            time.sleep(0.0002)  # a reader that also does other work (no GIL-bound spin)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    conn.send("ready")
    while True:
        command = conn.recv()
        if command[0] == "wait":
            conn.send("ok" if barrier(command[1]).wait(30) else "timeout")
            continue
        stop.set()
        for reader in readers:
            reader.join(10)
        stale = [key for key in keys if local.get(key) != cache.get(key)]
        conn.send({"latencies": latencies, "stale": stale, "flushes": local.flushes})
        break
    cache.close()
