"""`check_rate_limit`, `hit_rate_limit` and `hit_rate_limits`: exact windows on the manual clock,
both services."""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

import pytest
from cachebolt import RateLimitResult
from cachebolt._core import MemoryStore
from conftest import Clock, ServiceFactory, SyncProxy
from reliability._figures import figure

ALGORITHMS = ("sliding_log", "fixed_window", "sliding_counter", "gcra")

ORIGIN_MS = 1_700_000_000_000


@pytest.mark.memory_only(
    reason="moves the rate-limit clock; Redis scripts read the server TIME (test_realtime.py)"
)
def test_check_rate_limit_allows_exactly_limit_per_window(cache: Any, clock: Clock) -> None:
    assert [cache.check_rate_limit("otp", 3, 60) for _ in range(4)] == [True, True, True, False]
    clock.advance(59.999)
    assert cache.check_rate_limit("otp", 3, 60) is False
    clock.advance(0.001)
    assert cache.check_rate_limit("otp", 3, 60) is True
    assert cache.check_rate_limit("other", 3, 60) is True  # keys are independent


@pytest.mark.memory_only(
    reason="moves the rate-limit clock; Redis scripts read the server TIME (test_realtime.py)"
)
def test_sliding_log_is_exact_across_window_edges(cache: Any, clock: Clock) -> None:
    assert cache.check_rate_limit("k", 2, 10) is True  # t=0
    clock.advance(6)
    assert cache.check_rate_limit("k", 2, 10) is True  # t=6
    clock.advance(3.999)
    assert cache.check_rate_limit("k", 2, 10) is False  # t=9.999: both still in the window
    clock.advance(0.001)
    assert cache.check_rate_limit("k", 2, 10) is True  # t=10: the t=0 hit left
    assert cache.check_rate_limit("k", 2, 10) is False


@pytest.mark.memory_only(
    reason="moves the rate-limit clock; Redis scripts read the server TIME (test_realtime.py)"
)
def test_hit_rate_limit_result_fields(cache: Any, clock: Clock) -> None:
    first = cache.hit_rate_limit("api", 3, 10)
    assert first == RateLimitResult(True, 3, 2, 10.0, 0.0)
    clock.advance(4)
    assert cache.hit_rate_limit("api", 3, 10, cost=2) == RateLimitResult(True, 3, 0, 10.0, 0.0)
    clock.advance(1)
    denied = cache.hit_rate_limit("api", 3, 10)
    assert denied.allowed is False and not denied
    assert denied.limit == 3 and denied.remaining == 0
    assert denied.retry_after == pytest.approx(5.0)  # the t=0 hit leaves at t=10
    assert denied.reset_after == pytest.approx(9.0)  # the t=4 hits leave at t=14


def test_denied_hit_consumes_nothing(cache: Any) -> None:
    assert cache.hit_rate_limit("api", 5, 60, cost=4).remaining == 1
    big = cache.hit_rate_limit("api", 5, 60, cost=2)
    assert not big and big.remaining == 1
    assert cache.hit_rate_limit("api", 5, 60, cost=1).allowed
    assert cache.hit_rate_limit("api", 5, 60, cost=6).allowed is False  # above the limit


def test_cost_zero_peeks(cache: Any) -> None:
    cache.hit_rate_limit("api", 2, 60)
    peek = cache.hit_rate_limit("api", 2, 60, cost=0)
    assert peek.allowed and peek.remaining == 1
    assert cache.hit_rate_limit("api", 2, 60, cost=0).remaining == 1


@pytest.mark.memory_only(
    reason="moves the rate-limit clock; Redis scripts read the server TIME (test_realtime.py)"
)
@pytest.mark.parametrize("algorithm", ["sliding_log", "fixed_window", "sliding_counter", "gcra"])
def test_every_algorithm_limits(cache: Any, clock: Clock, algorithm: str) -> None:
    results = [cache.hit_rate_limit("a", 2, 30, algorithm=algorithm).allowed for _ in range(3)]
    assert results == [True, True, False]
    clock.advance(60)
    assert cache.hit_rate_limit("a", 2, 30, algorithm=algorithm).allowed is True


def test_state_lives_at_ratelimit_key(cache: Any, store: MemoryStore) -> None:
    cache.check_rate_limit("user:1", 5, 60)
    assert store.keys() == ["ratelimit:user:1"]
    cache.set("user:1", "value")  # the user's key is a different key
    assert cache.check_rate_limit("user:1", 5, 60) is True


def test_denials_are_counted_and_logged_at_debug(
    cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    cache.check_rate_limit("ip:1", 1, 60)
    cache.check_rate_limit("ip:1", 1, 60)
    cache.hit_rate_limit("ip:1", 1, 60)
    stats = cache.stats()
    assert stats["rate_limit_allowed"] == 1 and stats["rate_limit_denied"] == 2
    denials = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert denials == ["rate limit exceeded: ip:1"] * 2
    # Routine denials never reach WARNING: a flood of them must not flood the logs.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_result_is_frozen_and_slotted() -> None:
    result = RateLimitResult(True, 10, 9, 1.0, 0.0)
    assert bool(result) is True and bool(dataclasses.replace(result, allowed=False)) is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.allowed = False  # type: ignore[misc]
    assert not hasattr(result, "__dict__")
    assert [f.name for f in dataclasses.fields(result)] == [
        "allowed",
        "limit",
        "remaining",
        "reset_after",
        "retry_after",
    ]


def _stepped_traffic(cache: Any, key: str, algorithm: str, clock_ms: list[int]) -> list[bool]:
    """5 calls a second for 12 s against 5 per 3 s, on the scripts' clock `clock_ms[0]`."""
    admitted = []
    for _ in range(60):
        admitted.append(cache.hit_rate_limit(key, 5, 3, algorithm=algorithm).allowed)
        clock_ms[0] += 200
    return admitted


@pytest.mark.parametrize("server", ["redis", "cluster"])
@pytest.mark.parametrize("algorithm", ["fixed_window", "sliding_counter", "gcra"])
def test_limiters_recover_from_a_server_clock_stepped_back(
    request: pytest.FixtureRequest, svc: ServiceFactory, server: str, algorithm: str
) -> None:
    # The memory store's clock is monotonic (rust/src/store/clock.rs): only a server clock steps.
    cache = svc(request.getfixturevalue(f"{server}_config"))
    service = cache.service if isinstance(cache, SyncProxy) else cache
    clock_ms = [0]
    service._fallback._primary._test_clock = lambda: clock_ms[0]
    clock_ms[0] = ORIGIN_MS
    fresh = _stepped_traffic(cache, "fresh", algorithm, clock_ms)
    # State written while the server's clock ran a minute ahead, then the clock steps back.
    clock_ms[0] = ORIGIN_MS + 60_000
    assert sum(_stepped_traffic(cache, "stepped", algorithm, clock_ms)) == sum(fresh)
    clock_ms[0] = ORIGIN_MS
    assert _stepped_traffic(cache, "stepped", algorithm, clock_ms) == fresh
    assert 20 <= sum(fresh) <= 25
    figure(
        f"rate_limits.clock_stepped_back[{request.node.callspec.id}]",
        calls=len(fresh),
        admitted_fresh_key=sum(fresh),
        admitted_after_the_step=sum(fresh),
    )
    # A step back within a window holds the clock: nothing is admitted twice.
    clock_ms[0] = ORIGIN_MS + 1_000_000
    assert [cache.hit_rate_limit("near", 5, 3, algorithm=algorithm).allowed for _ in range(6)] == (
        [True] * 5 + [False]
    )
    clock_ms[0] -= 1000
    assert not any(cache.hit_rate_limit("near", 5, 3, algorithm=algorithm) for _ in range(5))


def single_key_answer(
    reference: MemoryStore, limits: list[tuple[str, int, float]], cost: int, algorithm: str
) -> list[RateLimitResult]:
    """`hit_rate_limits` composed of single-key calls on `reference`: a key alone admits iff
    `max(cost, 1)` units fit what a peek leaves (the rule of every algorithm); the call records
    `cost` at every key iff all admit; otherwise a key with room reports its peek, and a key
    without room its own denial (which records nothing)."""
    peeks = [
        reference.rate_limit(key, limit, window, 0, algorithm) for key, limit, window in limits
    ]
    if all(max(cost, 1) <= peek[1] for peek in peeks):
        answers = [
            reference.rate_limit(key, limit, window, cost, algorithm)
            for key, limit, window in limits
        ]
    else:
        answers = [
            (True, *peek[1:3], 0.0)
            if max(cost, 1) <= peek[1]
            else reference.rate_limit(key, limit, window, cost, algorithm)
            for peek, (key, limit, window) in zip(peeks, limits, strict=True)
        ]
    return [
        RateLimitResult(answer[0], limit, *answer[1:])
        for answer, (_, limit, _) in zip(answers, limits, strict=True)
    ]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_multi_key_limits_are_the_single_key_limits_all_or_nothing(
    cache: Any, store: Any, algorithm: str
) -> None:
    # The store's single-key limits are the reference for both multi-key paths: the store's
    # (memory) and the scripts' (Redis, the cluster), on a clock whose windows align with it.
    reference = MemoryStore(manual_clock=True, cleanup_interval_seconds=None)
    if not isinstance(store, MemoryStore):
        service = cache.service if isinstance(cache, SyncProxy) else cache
        service._fallback._primary._test_clock = lambda: ORIGIN_MS + reference.now_ms()
    rng = random.Random(f"many-{algorithm}")
    for round_ in range(3):
        window = rng.choice([0.01, 0.25, 1.0, 2.5])
        phones = [(f"{{r{round_}}}:phone:{n}", rng.choice([1, 2, 3]), window) for n in range(3)]
        ips = [(f"{{r{round_}}}:ip:{n}", rng.choice([3, 5]), window) for n in range(2)]
        for step in range(200):
            wait = rng.choice([0, 0, 1, rng.randrange(int(window * 500) + 1), int(window * 1000)])
            reference.advance_clock(wait)
            if isinstance(store, MemoryStore):
                store.advance_clock(wait)
            cost = rng.choice([0, 1, 1, 1, 2, 4])
            limits = [rng.choice(phones), rng.choice(ips)]
            got = cache.hit_rate_limits(limits, cost=cost, algorithm=algorithm)
            want = single_key_answer(reference, limits, cost, algorithm)
            assert list(got) == want, f"round {round_} step {step}: {limits} cost={cost}"
    reference.close()
