"""Locks under attack: mutual exclusion across processes, a thundering start, a holder paused
past its TTL (SIGSTOP), token randomness, and fencing.

Each test prints its figure (`figure(...)`) and fails on the bug it targets. Fast sizes run in
`make test`; `make soak` runs the full sizes. Processes are spawned (tests/reliability/
_workers.py) and talk to the session's redis-server; a paused process is always our own child.
"""

from __future__ import annotations

import bisect
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from cachebolt import CacheService
from cachebolt._core import MemoryStore

from ._figures import figure, size
from ._workers import (
    exclusion_worker,
    herd_worker,
    new_barrier,
    run_threads,
    run_workers,
    service,
    start_paused_holder,
)

# --- 1. mutual exclusion -------------------------------------------------------------------------


def overlapping_pairs(intervals: list[tuple[int, int]]) -> int:
    """Pairs of hold intervals that overlap (every pair, counted in O(n log n))."""
    ordered = sorted(intervals)
    starts = [start for start, _ in ordered]
    pairs = 0
    for index, (_, end) in enumerate(ordered):
        # Intervals that start after this one does and before it ends overlap it.
        pairs += bisect.bisect_left(starts, end, lo=index + 1) - (index + 1)
    return pairs


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_overlap_check_finds_overlaps() -> None:
    # The oracle itself: a test that cannot see an overlap could not fail.
    assert overlapping_pairs([(0, 10), (10, 20), (20, 30)]) == 0
    assert overlapping_pairs([(0, 10), (5, 20), (6, 7), (30, 40)]) == 3


def test_mutual_exclusion_across_processes(redis_url: str, redis_client: redis.Redis) -> None:
    processes, rounds = size(4, 8), size(40, 250)
    barrier = new_barrier(processes)
    args = [(redis_url, "mx", "mx:inside", rounds, barrier)] * processes
    results = run_workers(exclusion_worker, args)
    intervals = [span for result in results for span in result["intervals"]]
    latencies = [latency for result in results for latency in result["latencies"]]
    overlaps = overlapping_pairs(intervals)
    max_inside = max(result["max_inside"] for result in results)
    elapsed = (max(end for _, end in intervals) - min(start for start, _ in intervals)) / 1e9
    figure(
        "locks.mutual_exclusion.redis",
        processes=processes,
        rounds=rounds,
        overlaps=overlaps,
        max_inside=max_inside,
        acquisitions_per_s=round(len(intervals) / elapsed, 1),
        p99_acquire_ms=round(p99(latencies) * 1000, 2),
    )
    assert len(intervals) == processes * rounds
    assert [r["fallback_calls"] for r in results] == [0] * processes  # Redis served every lock
    assert overlaps == 0 and max_inside == 1
    assert redis_client.get("mx:inside") == "0"
    assert redis_client.exists("lock:mx") == 0  # every holder released


def test_mutual_exclusion_across_threads_in_memory() -> None:
    threads, rounds = size(4, 8), size(40, 250)
    cache = CacheService()
    intervals: list[tuple[int, int]] = []
    latencies: list[float] = []
    max_inside = [0]
    barrier = threading.Barrier(threads)

    def worker(_: int) -> None:
        barrier.wait()
        for _ in range(rounds):
            asked = time.monotonic()
            with cache.lock("mx", 30_000, wait_seconds=600):
                entered = time.monotonic_ns()
                latencies.append(time.monotonic() - asked)
                max_inside[0] = max(max_inside[0], cache.incr("mx:inside"))
                cache.decr("mx:inside")
                intervals.append((entered, time.monotonic_ns()))

    run_threads(threads, worker)
    overlaps = overlapping_pairs(intervals)
    elapsed = (max(end for _, end in intervals) - min(start for start, _ in intervals)) / 1e9
    figure(
        "locks.mutual_exclusion.memory",
        threads=threads,
        rounds=rounds,
        overlaps=overlaps,
        max_inside=max_inside[0],
        acquisitions_per_s=round(len(intervals) / elapsed, 1),
        p99_acquire_ms=round(p99(latencies) * 1000, 2),
    )
    assert len(intervals) == threads * rounds
    assert overlaps == 0 and max_inside[0] == 1
    cache.close()


# --- 2. thundering start -------------------------------------------------------------------------


def test_thundering_start_has_exactly_one_winner_per_round(
    redis_url: str, redis_client: redis.Redis
) -> None:
    processes, rounds = size(8, 64), size(8, 50)
    barrier = new_barrier(processes)
    results = run_workers(herd_worker, [(redis_url, "herd", rounds, barrier)] * processes)
    winners = [sum(result["wins"][r] for result in results) for r in range(rounds)]
    one_winner = sum(count == 1 for count in winners)
    figure(
        "locks.thundering_start",
        processes=processes,
        rounds=rounds,
        rounds_with_one_winner=f"{one_winner}/{rounds}",
    )
    assert [r["fallback_calls"] for r in results] == [0] * processes
    assert winners == [1] * rounds


# --- 3. expiry while held ------------------------------------------------------------------------


def wait_gone(client: redis.Redis, key: str) -> None:
    """Poll until Redis has expired `key` (PTTL -2); the holder's TTL is a few hundred ms."""
    deadline = time.monotonic() + 30
    while client.pttl(key) != -2:
        assert time.monotonic() < deadline, f"{key} did not expire"
        time.sleep(0.002)


def test_expired_holder_never_touches_the_next_holder_in_memory() -> None:
    rounds = size(1000, 1000)
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    cache = CacheService(store=store)
    wrongful_releases = wrongful_extends = 0
    for round_ in range(rounds):
        ttl = 1 + round_ % 50
        old = cache.acquire_lock("job", ttl)
        store.advance_clock(ttl)  # exactly at expiry: the lock is free
        new = cache.acquire_lock("job", 10_000)
        assert old is not None and new is not None
        wrongful_releases += cache.release_lock("job", old)
        wrongful_extends += cache.extend_lock("job", old, 60_000)
        still_held = store.get("lock:job") == new.encode() and store.pttl("lock:job") == 10_000
        wrongful_releases += not still_held
        assert cache.release_lock("job", new)
    figure(
        "locks.expiry_while_held.memory",
        rounds=rounds,
        wrongful_releases=wrongful_releases,
        wrongful_extends=wrongful_extends,
    )
    assert wrongful_releases == 0 and wrongful_extends == 0
    cache.close()


def test_expired_holder_never_touches_the_next_holder_on_redis(
    redis_url: str, redis_client: redis.Redis
) -> None:
    rounds = size(100, 1000)
    old_cache, new_cache = service(redis_url), service(redis_url)
    wrongful_releases = wrongful_extends = 0
    for _ in range(rounds):
        old = old_cache.acquire_lock("job", 20)
        assert old is not None
        wait_gone(redis_client, "lock:job")
        new = new_cache.acquire_lock("job", 10_000)
        assert new is not None
        wrongful_releases += old_cache.release_lock("job", old)
        wrongful_extends += old_cache.extend_lock("job", old, 60_000)
        ttl = redis_client.pttl("lock:job")
        wrongful_releases += not (redis_client.get("lock:job") == new and 0 < ttl <= 10_000)
        assert new_cache.release_lock("job", new)
    figure(
        "locks.expiry_while_held.redis",
        rounds=rounds,
        wrongful_releases=wrongful_releases,
        wrongful_extends=wrongful_extends,
    )
    assert wrongful_releases == 0 and wrongful_extends == 0
    old_cache.close()
    new_cache.close()


def receive(conn: Any, kind: str) -> tuple[Any, ...]:
    assert conn.poll(120), f"no {kind!r} from the holder process"
    message = conn.recv()
    assert message[0] == kind, message
    return tuple(message[1:])


def stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def paused_rounds(
    redis_url: str, client: redis.Redis, rounds: int, *, fenced: bool, on_round: Any
) -> int:
    """Drive `paused_holder`: per round it takes the lock, we SIGSTOP it past its TTL, take the
    lock ourselves, let it go on (SIGCONT) and hand its answers to `on_round(new, after)`.
    Returns its fallback_calls."""
    process, conn = start_paused_holder(redis_url, "job", rounds, fenced)
    cache = service(redis_url)
    try:
        for _ in range(rounds):
            conn.send("next")
            _token, _fence = receive(conn, "held")
            os.kill(process.pid, signal.SIGSTOP)
            deadline = time.monotonic() + 10
            while not stopped(process.pid):
                assert time.monotonic() < deadline
                time.sleep(0.001)
            wait_gone(client, "lock:job")  # its TTL ran out while it was stopped
            new = cache.acquire_fenced_lock("job", 60_000) if fenced else None
            if not fenced:
                token = cache.acquire_lock("job", 60_000)
                new = (token, 0)
            assert new is not None and new[0] is not None
            conn.send("go")
            os.kill(process.pid, signal.SIGCONT)
            after = receive(conn, "after")
            on_round(new, after)
            assert cache.release_lock("job", new[0])
        (fallback_calls,) = receive(conn, "done")
        return int(fallback_calls)
    finally:
        if process.is_alive():
            os.kill(process.pid, signal.SIGCONT)
        process.join(10)
        if process.is_alive():
            process.kill()
        cache.close()


def test_sigstopped_holder_never_touches_the_next_holder(
    redis_url: str, redis_client: redis.Redis
) -> None:
    rounds = size(8, 100)
    counts = {"wrongful_releases": 0, "wrongful_extends": 0}

    def check(new: tuple[str, int], after: tuple[bool, bool, int]) -> None:
        released, extended, _ = after
        counts["wrongful_releases"] += released
        counts["wrongful_extends"] += extended
        ttl = redis_client.pttl("lock:job")
        counts["wrongful_releases"] += not (redis_client.get("lock:job") == new[0] and ttl > 0)
        counts["wrongful_extends"] += ttl > 60_000

    fallback = paused_rounds(redis_url, redis_client, rounds, fenced=False, on_round=check)
    figure("locks.expiry_while_held.sigstop", rounds=rounds, **counts)
    assert fallback == 0
    assert counts == {"wrongful_releases": 0, "wrongful_extends": 0}


# --- 4. tokens -----------------------------------------------------------------------------------


def token_figures(tokens: list[str]) -> dict[str, Any]:
    """Duplicates, the token length in bits, and the worst bias of any bit position (in
    standard deviations of a fair coin): a constant or skewed bit (a timestamp, a MAC, a
    counter) stands out by far more than 6."""
    assert all(len(token) == 32 for token in tokens)
    n = len(tokens)
    ones = []
    for position in range(32):  # hex digit by hex digit, 4 bits each
        digits = Counter(token[position] for token in tokens)
        for bit in range(4):
            ones.append(sum(c for d, c in digits.items() if int(d, 16) >> bit & 1))
    worst = max(abs(count - n / 2) / ((n / 4) ** 0.5) for count in ones)
    return {"tokens": n, "duplicates": n - len(set(tokens)), "bits": 128, "worst_bit_z": worst}


def test_memory_tokens_are_128_random_bits_without_duplicates() -> None:
    count = size(100_000, 1_000_000)
    store = MemoryStore(cleanup_interval_seconds=None)
    tokens = []
    for _ in range(count):
        token = store.acquire_lock("t", 60_000)
        assert token is not None
        tokens.append(token)
        store.release_lock("t", token)
    numbers = token_figures(tokens)
    figure("locks.tokens.memory", **{**numbers, "worst_bit_z": round(numbers["worst_bit_z"], 2)})
    assert numbers["duplicates"] == 0 and numbers["worst_bit_z"] < 6


def test_redis_tokens_are_128_random_bits_without_duplicates(
    redis_url: str, redis_client: redis.Redis
) -> None:
    count = size(5_000, 1_000_000)
    cache = service(redis_url)
    tokens = []
    for i in range(count):
        token = cache.acquire_lock(f"t{i}", 1000)  # one round trip each; they expire by TTL
        assert token is not None
        tokens.append(token)
    numbers = token_figures(tokens)
    figure("locks.tokens.redis", **{**numbers, "worst_bit_z": round(numbers["worst_bit_z"], 2)})
    assert numbers["duplicates"] == 0 and numbers["worst_bit_z"] < 6
    cache.close()


def test_token_check_sees_a_weak_token() -> None:
    # uuid1-like tokens (time + constant node) must fail the bit check.
    weak = [f"{(i << 48) | 0x1E2D3C4B5A69:032x}" for i in range(10_000)]
    assert token_figures(weak)["worst_bit_z"] > 6


# --- 5. fencing ----------------------------------------------------------------------------------


class FencedResource:
    """The toy resource of the fencing test: refuses a write whose fence is below the highest
    it has accepted (with `check=False` it is the unfenced resource: it accepts everything)."""

    def __init__(self, *, check: bool) -> None:
        self.check = check
        self.highest = 0
        self.value: Any = None

    def write(self, fence: int, value: Any) -> bool:
        if self.check and fence < self.highest:
            return False
        self.highest = max(self.highest, fence)
        self.value = value
        return True


@pytest.mark.parametrize("fenced", [True, False], ids=["fenced", "unfenced"])
def test_a_paused_holder_cannot_write_after_its_lock_expired(
    redis_url: str, redis_client: redis.Redis, fenced: bool
) -> None:
    rounds = size(8, 100)
    stale_accepted = [0]

    def check(new: tuple[str, int], after: tuple[bool, bool, int]) -> None:
        resource = FencedResource(check=fenced)
        assert resource.write(new[1], "new holder")  # the successor writes first
        _, _, old_fence = after
        if fenced:
            assert old_fence < new[1]
        stale_accepted[0] += resource.write(old_fence, "paused holder")

    fallback = paused_rounds(redis_url, redis_client, rounds, fenced=fenced, on_round=check)
    label = "with_fencing" if fenced else "without_fencing"
    figure(f"locks.fencing.{label}", rounds=rounds, stale_writes_accepted=stale_accepted[0])
    assert fallback == 0
    if fenced:
        assert stale_accepted[0] == 0
    else:
        assert stale_accepted[0] == rounds  # the hazard fencing exists for


def test_fencing_in_memory_with_a_paused_thread() -> None:
    store = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    cache = CacheService(store=store)
    rounds = size(1000, 1000)
    resource = FencedResource(check=True)
    stale = 0
    for _ in range(rounds):
        paused = cache.acquire_fenced_lock("job", 100)
        store.advance_clock(100)
        successor = cache.acquire_fenced_lock("job", 100)
        assert paused is not None and successor is not None
        assert resource.write(successor.fence, "successor")
        stale += resource.write(paused.fence, "paused")
        cache.release_lock("job", successor.token)
    figure("locks.fencing.memory", rounds=rounds, stale_writes_accepted=stale)
    assert stale == 0
    cache.close()
