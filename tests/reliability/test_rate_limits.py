"""Rate limits under attack: exactness under concurrency, window semantics against an exact
oracle, clock skew, lost replies, and no immortal keys.

What each algorithm promises (rust/src/store/rate_limit/algorithm.rs, copied by the Lua scripts):
`sliding_log` is exact (no window of `window` ms admits more than `limit`); `fixed_window`
admits at most `limit` per aligned window (so at most 2L in a sliding one); `sliding_counter`
at most `L + floor(L * (W - 2) / W)` in a sliding window. Inside one aligned window all three
admit exactly `limit` of a burst, which is what the concurrency test checks (and, should a run
straddle a window edge, the documented bound instead).
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import deque
from typing import Any

import pytest
import redis
from _servers import RedisServer, no_retry
from cachebolt import CacheConfig, CacheService
from cachebolt._core import MemoryStore
from cachebolt._redis import script_text
from cachebolt.rate_limits import EnhancedRateLimitService
from conftest import ServiceFactory, wait_until

from ._figures import figure, size
from ._proxy import FaultProxy
from ._workers import limit_worker, new_barrier, run_threads, run_workers, skewed_worker

ALGORITHMS = ["sliding_log", "fixed_window", "sliding_counter"]


def sliding_bound(algorithm: str, limit: int, window_ms: int) -> int:
    """The most units any sliding window of `window_ms` may hold (the documented bounds)."""
    if algorithm == "sliding_log":
        return limit
    if algorithm == "fixed_window":
        return 2 * limit
    return limit + limit * (window_ms - 2) // window_ms


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


# --- 6. exactness under concurrency --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exact_under_concurrency_on_redis(
    redis_url: str, redis_client: redis.Redis, algorithm: str
) -> None:
    processes, threads, hits = size(2, 4), size(4, 8), size(25, 100)
    limit, window = 50, 3600.0
    barrier = new_barrier(processes)
    before = server_ms(redis_client)
    args = [(redis_url, "hot", limit, window, algorithm, threads, hits, barrier)] * processes
    results = run_workers(limit_worker, args)
    after = server_ms(redis_client)
    admitted = sum(result["admitted"] for result in results)
    one_window = before // 3_600_000 == after // 3_600_000
    figure(
        f"rate_limits.exactness.redis.{algorithm}",
        processes=processes,
        threads=threads,
        hits=processes * threads * hits,
        limit=limit,
        admitted=admitted,
    )
    assert [r["fallback_calls"] for r in results] == [0] * processes
    if algorithm == "sliding_log" or one_window:
        assert admitted == limit
    else:  # the burst straddled an aligned window edge: the documented bound
        assert limit <= admitted <= sliding_bound(algorithm, limit, int(window * 1000))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exact_under_concurrency_in_memory(algorithm: str) -> None:
    threads, hits, limit = size(8, 8), size(50, 100), 50
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)  # one aligned window
    cache = CacheService(store=store)
    admitted = [0] * threads
    barrier = threading.Barrier(threads)

    def hammer(index: int) -> None:
        barrier.wait()
        for _ in range(hits):
            admitted[index] += bool(cache.hit_rate_limit("hot", limit, 60, algorithm=algorithm))

    run_threads(threads, hammer)
    figure(
        f"rate_limits.exactness.memory.{algorithm}",
        threads=threads,
        hits=threads * hits,
        limit=limit,
        admitted=sum(admitted),
    )
    assert sum(admitted) == limit
    cache.close()


# --- 7. window semantics against an exact oracle -------------------------------------------------

# (advance to ms, cost, expected (allowed, remaining, reset_after_ms, retry_after_ms)); limit and
# window per table. Denied hits consume nothing: every later row would differ if they did.
TABLES: dict[str, tuple[int, int, list[tuple[int, int, tuple[int, int, int, int]]]]] = {
    "sliding_log": (
        3,
        1000,
        [
            (0, 1, (1, 2, 1000, 0)),
            (0, 0, (1, 2, 1000, 0)),  # a peek records nothing
            (100, 2, (1, 0, 1000, 0)),
            (200, 1, (0, 0, 900, 800)),  # waits for the hit at 0 to leave
            (200, 4, (0, 0, 900, 1000)),  # cost > limit: never, "one window"
            (200, 0, (0, 0, 900, 800)),  # a peek with nothing left is denied
            (999, 1, (0, 0, 101, 1)),
            (1000, 1, (1, 0, 1000, 0)),  # the hit at 0 counted in (0 - 1000, 0] only
            (1000, 0, (0, 0, 1000, 100)),
            (1100, 2, (1, 0, 1000, 0)),
            (5000, 0, (1, 3, 0, 0)),  # empty again
        ],
    ),
    "fixed_window": (
        3,
        1000,
        [
            (0, 2, (1, 1, 1000, 0)),
            (500, 2, (0, 1, 500, 500)),
            (500, 0, (1, 1, 500, 0)),
            (999, 1, (1, 0, 1, 0)),
            (999, 5, (0, 0, 1, 1000)),
            (1000, 3, (1, 0, 1000, 0)),  # a new aligned window
            (1500, 1, (0, 0, 500, 500)),
        ],
    ),
    "sliding_counter": (
        4,
        100,
        [
            (0, 3, (1, 1, 200, 0)),
            (50, 2, (0, 1, 150, 84)),
            (50, 0, (1, 1, 150, 0)),
            (50, 5, (0, 1, 150, 100)),
            (133, 2, (0, 1, 67, 1)),
            (134, 2, (1, 0, 166, 0)),
        ],
    ),
}
# A clock origin that is a multiple of every window, so Redis windows align as in memory.
ORIGIN_MS = 6_000 * 10**8


def limiter(backend: str, request: pytest.FixtureRequest) -> tuple[CacheService, Any]:
    """A blocking service on `backend` and its manual clock (ms) for rate limits."""
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    if backend == "memory":
        return CacheService(store=store), store
    config: CacheConfig = request.getfixturevalue("redis_config")
    cache = CacheService(config)
    primary = cache._fallback._primary  # type: ignore[union-attr]
    primary._test_clock = lambda: ORIGIN_MS + store.now_ms()
    return cache, store


@pytest.mark.parametrize("backend", ["memory", "redis"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_window_semantics_table(
    request: pytest.FixtureRequest, backend: str, algorithm: str
) -> None:
    cache, clock = limiter(backend, request)
    limit, window_ms, steps = TABLES[algorithm]
    for number, (at, cost, want) in enumerate(steps):
        clock.advance_clock(at - clock.now_ms())
        got = cache.hit_rate_limit("t", limit, window_ms / 1000, cost=cost, algorithm=algorithm)
        expected = (bool(want[0]), want[1], want[2] / 1000, want[3] / 1000)
        actual = (got.allowed, got.remaining, got.reset_after, got.retry_after)
        assert actual == expected, f"{algorithm} step {number} (t={at}, cost={cost})"
    cache.close()


class SlidingLogOracle:
    """The exact sliding log in plain Python: a hit at t counts in (t - window, t]."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window = window_ms
        self.entries: deque[tuple[int, int]] = deque()  # (time, cost), one per time
        self.last = 0

    def hit(self, now: int, cost: int) -> tuple[bool, int, int, int]:
        now = max(now, self.last)
        self.last = now
        while self.entries and self.entries[0][0] <= now - self.window:
            self.entries.popleft()
        used = sum(c for _, c in self.entries)
        need = max(cost, 1)
        allowed = need <= self.limit - used
        if allowed and cost:
            if self.entries and self.entries[-1][0] == now:
                self.entries[-1] = (now, self.entries[-1][1] + cost)
            else:
                self.entries.append((now, cost))
            used += cost
        retry = 0
        if not allowed:
            if need > self.limit:
                retry = self.window
            else:
                excess, total = used + need - self.limit, 0
                for at, c in self.entries:
                    total += c
                    if total >= excess:
                        retry = at + self.window - now
                        break
        reset = self.entries[-1][0] + self.window - now if self.entries else 0
        return allowed, self.limit - used, reset, retry


def max_in_any_window(admitted: list[tuple[int, int]], window_ms: int) -> int:
    """The most units admitted in any half-open window (t - window, t] (two pointers)."""
    most = total = 0
    start = 0
    for at, cost in admitted:
        total += cost
        while admitted[start][0] <= at - window_ms:
            total -= admitted[start][1]
            start += 1
        most = max(most, total)
    return most


def test_sliding_log_replay_matches_the_exact_oracle() -> None:
    steps = size(10_000, 100_000)
    limit, window_ms = 10, 1000
    rng = random.Random(7)
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    cache = CacheService(store=store)
    oracle = SlidingLogOracle(limit, window_ms)
    admitted: dict[str, list[tuple[int, int]]] = {name: [] for name in ALGORITHMS}
    mismatches = 0
    for _ in range(steps):
        store.advance_clock(rng.choice([0, 0, 1, 7, rng.randrange(300), rng.randrange(1200)]))
        now = store.now_ms()
        cost = rng.choice([0, 1, 1, 1, 1, 2, 3, limit, limit + 1])
        for algorithm in ALGORITHMS:
            got = cache.hit_rate_limit(
                f"replay-{algorithm}", limit, window_ms / 1000, cost=cost, algorithm=algorithm
            )
            if got.allowed and cost:
                admitted[algorithm].append((now, cost))
            if algorithm == "sliding_log":
                allowed, remaining, reset, retry = oracle.hit(now, cost)
                want = (allowed, remaining, reset / 1000, retry / 1000)
                mismatches += (got.allowed, got.remaining, got.reset_after, got.retry_after) != want
    most = {name: max_in_any_window(admitted[name], window_ms) for name in ALGORITHMS}
    figure(
        "rate_limits.window_semantics",
        steps=steps,
        limit=limit,
        oracle_mismatches=mismatches,
        max_in_any_window_sliding_log=most["sliding_log"],
        max_in_any_window_fixed_window=most["fixed_window"],
        max_in_any_window_sliding_counter=most["sliding_counter"],
    )
    assert mismatches == 0
    for name in ALGORITHMS:
        assert most[name] <= sliding_bound(name, limit, window_ms), name
    cache.close()


def test_max_in_window_sees_a_burst() -> None:
    # The figure's own oracle: 10 at 999 and 10 at 1000 fall in one window of 1000 ms.
    assert max_in_any_window([(999, 10), (1000, 10), (1999, 1)], 1000) == 20
    assert max_in_any_window([(0, 10), (1000, 10)], 1000) == 10


# --- 8. clock skew -------------------------------------------------------------------------------


def test_clock_skew_between_processes_does_not_matter(
    redis_url: str, redis_client: redis.Redis
) -> None:
    limit, window, hits = 20, 10.0, 30
    barrier = new_barrier(2)
    args = [
        (redis_url, "skewed", limit, window, hits, 0.0, barrier),
        (redis_url, "skewed", limit, window, hits, 30.0, barrier),  # 3 windows ahead
    ]
    results = run_workers(skewed_worker, args)
    admitted = sum(result["admitted"] for result in results)
    figure(
        "rate_limits.clock_skew",
        skew_s=30,
        window_s=window,
        limit=limit,
        admitted=admitted,
        wall_clock_gap_s=round(results[1]["wall"] - results[0]["wall"], 1),
    )
    assert [r["fallback_calls"] for r in results] == [0, 0]
    assert results[1]["wall"] - results[0]["wall"] > 25  # the skew was real in the child
    assert admitted == limit


# --- 9. replies lost after the server acted ------------------------------------------------------


def consumed(cache: Any, key: str, limit: int, algorithm: str) -> int:
    """Units recorded at `key` on Redis (a peek: cost 0 records nothing)."""
    return limit - cache.hit_rate_limit(key, limit, 3600, cost=0, algorithm=algorithm).remaining


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_lost_reply_never_runs_the_script_twice(
    request: pytest.FixtureRequest,
    svc: ServiceFactory,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    algorithm: str,
) -> None:
    calls, limit = size(5, 50), 1000
    with FaultProxy(redis_server.port) as proxy:
        config = CacheConfig(
            enabled=True,
            host="127.0.0.1",
            port=proxy.port,
            key_prefix="lost:",
            connect_timeout_ms=5000,
            command_timeout_ms=5000,
        )
        cache = svc(config)
        assert cache.ping() is not None
        per_call = []
        for _ in range(calls):
            before = consumed(cache, "k", limit, algorithm)
            proxy.drop_reply_to(b"EVALSHA")
            result = cache.hit_rate_limit("k", limit, 3600, algorithm=algorithm)
            assert result.allowed  # answered (by memory: the reply never came)
            wait_until(cache.is_redis_available, timeout=30)
            per_call.append(consumed(cache, "k", limit, algorithm) - before)
        assert proxy.dropped == calls
    flavour = request.node.callspec.params["svc"]
    figure(
        f"rate_limits.lost_reply.{flavour}.{algorithm}",
        calls=calls,
        max_quota_per_call=max(per_call),
        total_quota=sum(per_call),
    )
    assert max(per_call) <= 1
    assert sum(per_call) == calls  # the request did reach Redis each time


def test_a_retrying_client_would_run_it_twice(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    # The hazard the test above guards against: redis-py's default retries re-send the script.
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    with FaultProxy(redis_server.port) as proxy:
        for retry, expected in ((Retry(NoBackoff(), 3), 2), (no_retry(), None)):
            # retry_on_error: redis-py < 6 retries only the errors it is given.
            client = redis.Redis(
                port=proxy.port,
                retry=retry,
                retry_on_error=[redis.ConnectionError],
                socket_timeout=5,
            )
            script = client.register_script(script_text("rate_limit_sliding_log"))
            key = f"retry-{expected}"
            script(keys=[key], args=[1000, 3_600_000, 1, ""])  # loads it (SCRIPT LOAD + EVALSHA)
            proxy.drop_reply_to(b"EVALSHA")
            try:
                script(keys=[key], args=[1000, 3_600_000, 1, ""])
            except redis.ConnectionError:
                assert expected is None
            units = redis_client.zcard(key)
            if expected is not None:
                figure("rate_limits.lost_reply.redis_py_retry", quota_per_call=units - 1)
                assert units - 1 == expected
            else:
                assert units - 1 == 1
            client.close()


# --- 10. no immortal keys ------------------------------------------------------------------------

BOOKKEEPING = ("lock:", "ratelimit:", "fence:", "domain-block:")


def test_a_call_that_rewrites_the_only_entry_keeps_the_ttl(
    redis_config: CacheConfig, redis_client: redis.Redis
) -> None:
    # The sliding log rewrites its newest entry's note when older entries expire and the call
    # admits nothing (a peek, a denial). Rewriting it by ZREM + ZADD deleted the key when that
    # entry was the only one left and created it again without a TTL (found by the random test
    # below). The pinned clock makes the sequence exact; Redis keeps such keys >= 60 s real.
    cache = CacheService(redis_config)
    clock = [0]
    primary = cache._fallback._primary  # type: ignore[union-attr]
    primary._test_clock = lambda: ORIGIN_MS + clock[0]
    for at, cost in ((0, 1), (500, 1), (1200, 0), (1300, 5)):
        clock[0] = at
        cache.hit_rate_limit("one", 3, 1.0, cost=cost)
        cache.hit_rate_limits([("many:a", 3, 1.0), ("many:b", 5, 1.0)], cost=cost)
    ttls = {key: redis_client.pttl(key) for key in redis_client.keys("ratelimit:*")}
    assert sorted(ttls) == ["ratelimit:many:a", "ratelimit:many:b", "ratelimit:one"]
    assert all(ttl > 0 for ttl in ttls.values()), ttls
    cache.close()


def test_no_immortal_keys(redis_config: CacheConfig, redis_client: redis.Redis) -> None:
    """After random operations of every family, every key the library's own bookkeeping made
    (locks, fence counters, rate-limit state, domain-limit blocks) has a TTL; a key without
    one was created by the workload itself without a TTL (set(ttl=None), sadd, hset, incr,
    get_or_set(ttl=None))."""
    operations = size(5_000, 10_000)
    rng = random.Random(10)
    cache = CacheService(dataclasses.replace(redis_config, key_prefix="imm:"))
    limiter = EnhancedRateLimitService(cache)
    no_ttl: set[str] = set()  # user keys the workload created without a TTL
    tokens: dict[str, str] = {}

    def ttl() -> float | None:
        return rng.choice([None, 1, 30, 0.05])

    for _ in range(operations):
        n = rng.randrange(8)
        family = rng.randrange(12)
        if family == 0:
            chosen = ttl()
            cache.set(f"s{n}", n, ttl=chosen)
            if chosen is None:
                no_ttl.add(f"s{n}")
        elif family == 1:
            chosen = ttl()
            cache.get_or_set(f"g{n}", chosen, lambda n=n: n)
            if chosen is None:
                no_ttl.add(f"g{n}")
        elif family == 2:
            rng.choice([cache.incr, cache.decr])(f"c{n}")
            no_ttl.add(f"c{n}")
        elif family == 3:
            cache.expire(f"c{n}", rng.choice([1, 30]))
        elif family == 4:
            cache.sadd(f"set{n}", str(rng.randrange(4)))
            no_ttl.add(f"set{n}")
            cache.srem(f"set{n}", str(rng.randrange(4)))
        elif family == 5:
            cache.hset(f"h{n}", f"f{rng.randrange(3)}", n)
            no_ttl.add(f"h{n}")
            cache.hdel(f"h{n}", f"f{rng.randrange(3)}")
        elif family == 6:
            token = cache.acquire_lock(f"L{n}", rng.choice([50, 5000]))
            if token is not None:
                tokens[f"L{n}"] = token
            elif f"L{n}" in tokens and rng.random() < 0.5:
                cache.release_lock(f"L{n}", tokens[f"L{n}"])
        elif family == 7:
            held = cache.acquire_fenced_lock(f"F{n}", rng.choice([50, 5000]))
            if held is not None and rng.random() < 0.7:
                cache.extend_lock(f"F{n}", held.token, 3000)
                cache.release_lock(f"F{n}", held.token)
        elif family == 8:
            with cache.lock(f"W{n}", 5000, wait_seconds=1):
                pass
        elif family == 9:
            algorithm = rng.choice(ALGORITHMS)
            cache.hit_rate_limit(
                f"R{n}-{algorithm}", 3, rng.choice([0.05, 1, 60]),
                cost=rng.choice([0, 1, 2, 5]), algorithm=algorithm,
            )  # fmt: skip
        elif family == 10:
            if rng.random() < 0.5:
                cache.check_rate_limit(f"C{n}", 2, rng.choice([0.05, 10]))
            else:
                window = rng.choice([0.05, 1])
                cache.hit_rate_limits(
                    [(f"M{n}:a", 2, window), (f"M{n}:b", 3, window)], cost=rng.choice([0, 1, 4])
                )
        elif rng.random() < 0.5:  # domain limits: violations escalate to temporary blocks
            limiter.check_otp(f"+1555010010{n}", f"203.0.113.{n}")
        else:
            cache.delete(rng.choice([f"s{n}", f"set{n}", f"h{n}", f"c{n}"]))
    immortal_bookkeeping, unexplained, keys = [], [], 0
    seen = dict.fromkeys(BOOKKEEPING, 0)
    for raw in redis_client.scan_iter(match="imm:*", count=500):
        keys += 1
        name = raw[len("imm:") :]
        for namespace in BOOKKEEPING:
            seen[namespace] += name.startswith(namespace)
        if redis_client.pttl(raw) != -1:
            continue
        if name.startswith(BOOKKEEPING):
            immortal_bookkeeping.append(name)
        elif name not in no_ttl:
            unexplained.append(name)
    figure(
        "rate_limits.no_immortal_keys",
        operations=operations,
        keys=keys,
        bookkeeping_without_ttl=len(immortal_bookkeeping),
        unexplained_without_ttl=len(unexplained),
        bookkeeping_keys=seen,
    )
    assert cache.stats()["fallback_calls"] == 0
    assert immortal_bookkeeping == [] and unexplained == []
    assert all(seen.values()), seen  # the workload made every kind of bookkeeping key
    cache.close()
