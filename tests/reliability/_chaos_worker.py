"""The worker process of the chaos run (tests/reliability/test_faults.py), started with spawn.

One blocking `CacheService` per process on the Redis under attack, doing mixed operations in one
thread until told to stop. Each call is timed and classified by where it was served:
`is_redis_available()` before and after the call (one thread per process, so nothing else moves
the breaker between the two reads except the probe, which only closes it):

* before True, after True: served by Redis;
* before True, after False: the call tripped the breaker (Redis failed under it; memory answered);
* before False: served by memory at once (the breaker was open); if after is True, the probe
  closed the breaker meanwhile and the call may have gone to Redis (where 3: either).

Staleness oracle, per key (each worker writes only its own keys, so one writer per key). A value
is `{"v": n}` with n increasing per key. A read is stale when:

* it was served by Redis and returned a version older than the last write of that key that Redis
  acknowledged (served by Redis, before and after) - a restarted server may lose everything (a
  miss is never stale), but it must not go back in time; or it returned a version that never went
  to Redis (written by memory only during an outage: the library promises not to copy them);
* it was served by memory and returned a version written during an earlier outage (before the
  last recovery this worker saw): after Redis returns, memory must not keep the old outage's data.

Writes made while Redis was down go to memory only and are not copied back: after the recovery a
read may return the older value Redis still holds. That is documented, not stale.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from typing import Any

from cachebolt import CacheConfig, CacheService


def work(config: CacheConfig, worker: int, ready: Any, stop: Any, out_path: str) -> None:
    """Run mixed operations until `stop` is set; write the records as JSON to `out_path`."""
    rng = random.Random(worker)
    cache = CacheService(config)
    cache.subscribe("chaos", lambda message: None)
    records: list[tuple[float, float, int]] = []  # (start, end, where: see above)
    errors: list[str] = []
    stale: list[str] = []
    version = 0
    acked: dict[str, int] = {}  # last version Redis acknowledged
    to_redis: dict[str, set[int]] = {}  # versions that reached (or may have reached) Redis
    written_in: dict[int, int] = {}  # memory-written version -> recovery count at its write
    recoveries = 0
    was_memory = False
    ready.set()
    while not stop.is_set():
        key = f"w{worker}:k{rng.randrange(16)}"
        choice = rng.randrange(10)
        before = cache.is_redis_available()
        started = time.monotonic()
        got: Any = None
        try:
            if choice < 3:
                version += 1
                cache.set(key, {"v": version}, 60)
            elif choice < 6:
                got = cache.get(key)
            elif choice == 6:
                cache.incr(f"w{worker}:n")
            elif choice == 7:
                token = cache.acquire_lock(key, 1000)
                if token is not None:
                    cache.release_lock(key, token)
            elif choice == 8:
                cache.check_rate_limit(key, 10_000, 60)
            else:
                cache.publish("chaos", {"w": worker})
        except BaseException:
            errors.append(traceback.format_exc())
            continue
        ended = time.monotonic()
        after = cache.is_redis_available()
        where = (0 if after else 1) if before else (3 if after else 2)
        records.append((started, ended, where))
        if where == 0 and was_memory:
            recoveries += 1
        was_memory = where != 0
        if choice < 3:
            if where == 0:
                acked[key] = version
            if where != 2:  # it reached Redis, or may have
                to_redis.setdefault(key, set()).add(version)
            if where != 0:
                written_in[version] = recoveries
        elif choice < 6 and got is not None:
            seen = int(got["v"])
            if where == 0 and (seen < acked.get(key, 0) or seen not in to_redis.get(key, set())):
                stale.append(f"redis read {key}={seen}, acked {acked.get(key)}")
            if where in (1, 2) and written_in.get(seen, recoveries) < recoveries:
                stale.append(f"memory read {key}={seen} from an earlier outage")
    cache.close()
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump({"records": records, "errors": errors, "stale": stale}, out)
