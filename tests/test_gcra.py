"""`algorithm="gcra"`: the generic cell rate algorithm, exact against a pure-Python reference on
memory, Redis and the cluster, sync and async, through every public entry that takes `algorithm=`.

`Reference` is the textbook GCRA: a theoretical arrival time (TAT) in exact fractions of a ms,
emission interval `T = window / limit`, tolerance `window` (a burst of `limit`). The store and the
Lua script count debt in 1/limit ms instead; agreement on Hypothesis sequences of (wait, cost)
shows they are the same algorithm. On Redis the script reads the test's clock (`_test_clock`).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
import redis
from _servers import RedisServer
from _web import Harness, open_harness
from cachebolt import CacheConfig, RateLimitExceeded, RateLimitResult, WrongTypeError
from cachebolt._core import MemoryStore
from cachebolt._validate import seconds_arg
from cachebolt.fastapi import RateLimit
from conftest import ServiceFactory, SyncProxy
from fastapi import Depends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability._figures import figure

ORIGIN_MS = 1_700_000_000_000


class Reference:
    """GCRA as redis-cell states it, on exact fractions: one limit, one window."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit, self.window = limit, window_ms
        self.interval = Fraction(window_ms, limit)
        self.tat = Fraction(0)
        self.last = 0

    def hit(self, now_ms: int, cost: int) -> tuple[bool, int, float, float]:
        """(allowed, remaining, reset_after, retry_after) as the service returns them."""
        now = max(now_ms, self.last)
        self.last = now
        tat = max(self.tat, Fraction(now))
        need = max(cost, 1)
        allowed = need <= self.limit and tat + need * self.interval - now <= self.window
        if allowed:
            tat += cost * self.interval
            self.tat = tat
        if allowed:
            retry = 0
        elif need > self.limit:
            retry = self.window
        else:
            retry = math.ceil(tat + need * self.interval - self.window - now)
        remaining = max(0, math.floor((now + self.window - tat) / self.interval))
        reset = math.ceil(tat - now)
        return allowed, remaining, reset / 1000, retry / 1000


class Timeline:
    """The rate-limit clock of a test service: the store's manual clock on memory, the Redis
    backend's test clock on Redis and the cluster."""

    def __init__(self, cache: Any, store: Any) -> None:
        self.store = store
        self.offset = 0
        if not isinstance(store, MemoryStore):
            service = cache.service if isinstance(cache, SyncProxy) else cache
            service._fallback._primary._test_clock = lambda: ORIGIN_MS + self.offset

    @property
    def now(self) -> int:
        return self.store.now_ms() if isinstance(self.store, MemoryStore) else self.offset

    def advance(self, ms: int) -> None:
        if isinstance(self.store, MemoryStore):
            self.store.advance_clock(ms)
        else:
            self.offset += ms


@pytest.fixture
def timeline(cache: Any, store: Any) -> Timeline:
    return Timeline(cache, store)


_keys = itertools.count()


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.sampled_from([1, 2, 3, 7, 10, 100]),
    window_s=st.sampled_from([0.001, 0.01, 0.25, 1, 3.5, 60]),
    steps=st.lists(
        st.tuples(
            st.one_of(st.just(0), st.integers(0, 50), st.integers(0, 70_000)),
            st.one_of(st.just(1), st.integers(0, 12)),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_gcra_matches_the_reference(
    cache: Any, timeline: Timeline, limit: int, window_s: float, steps: list[tuple[int, int]]
) -> None:
    key = f"gcra-{next(_keys)}"
    reference = Reference(limit, seconds_arg(window_s, "window_seconds"))
    for number, (wait, cost) in enumerate(steps):
        timeline.advance(wait)
        got = cache.hit_rate_limit(key, limit, window_s, cost=cost, algorithm="gcra")
        want = reference.hit(timeline.now, cost)
        assert got == RateLimitResult(want[0], limit, *want[1:]), f"step {number}"


class ManyReference:
    """`hit_rate_limits` on `Reference`s, all or nothing: a call is admitted iff every key admits
    it; a denied call records nothing, and a key with room reports its quota untouched."""

    def __init__(self) -> None:
        self.keys: dict[str, Reference] = {}

    def hit(
        self, now_ms: int, limits: list[tuple[str, int, int]], cost: int
    ) -> list[RateLimitResult]:
        """One call over (key, limit, window_ms) triples: the results the service returns."""
        for key, limit, window_ms in limits:
            self.keys.setdefault(key, Reference(limit, window_ms))
        trial = {key: copy.copy(self.keys[key]) for key, _, _ in limits}
        answers = [trial[key].hit(now_ms, cost) for key, _, _ in limits]
        if all(answer[0] for answer in answers):
            self.keys.update(trial)
        else:
            answers = [
                (True, *self.keys[key].hit(now_ms, 0)[1:3], 0.0) if answer[0] else answer
                for answer, (key, _, _) in zip(answers, limits, strict=True)
            ]
        return [
            RateLimitResult(answer[0], limit, *answer[1:])
            for answer, (_, limit, _) in zip(answers, limits, strict=True)
        ]


def hit_many(cache: Any, limits: list[tuple[str, int, int]], cost: int) -> list[RateLimitResult]:
    """`hit_rate_limits` with `gcra` over (key, limit, window_ms) triples."""
    triples = [(key, limit, window_ms / 1000) for key, limit, window_ms in limits]
    return list(cache.hit_rate_limits(triples, cost=cost, algorithm="gcra"))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    specs=st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 7, 10]), st.sampled_from([1, 10, 250, 1000, 3500])),
        min_size=1,
        max_size=3,
    ),
    steps=st.lists(
        st.tuples(
            st.one_of(st.just(0), st.integers(0, 50), st.integers(0, 5000)),
            st.one_of(st.just(1), st.integers(0, 12)),
            st.integers(1, 7),  # which keys the call names, as a bit mask
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_multi_key_gcra_matches_the_reference(
    cache: Any,
    timeline: Timeline,
    specs: list[tuple[int, int]],
    steps: list[tuple[int, int, int]],
) -> None:
    tag = next(_keys)  # one hash tag: the keys of one call share a cluster slot
    limits = [(f"{{many-{tag}}}:{i}", limit, window) for i, (limit, window) in enumerate(specs)]
    reference = ManyReference()
    for number, (wait, cost, mask) in enumerate(steps):
        timeline.advance(wait)
        named = [limits[i] for i in range(len(limits)) if mask >> i & 1] or limits[:1]
        got = hit_many(cache, named, cost)
        assert got == reference.hit(timeline.now, named, cost), f"step {number}"


def test_multi_key_gcra_replay_matches_the_reference_and_each_bound(
    cache: Any, timeline: Timeline
) -> None:
    # Phones limited per phone and per shared IP, as a domain limit checks them.
    rng = random.Random(30_000)
    phones = [(f"{{otp}}:phone:{n}", 3, 1000) for n in range(3)]
    ips = [(f"{{otp}}:ip:{n}", 5, 1000) for n in range(2)]
    reference, admitted = ManyReference(), {key: [] for key, _, _ in phones + ips}
    for step in range(600):
        timeline.advance(rng.choice([0, 0, 1, rng.randrange(300), 1000]))
        cost = rng.choice([0, 1, 1, 1, 2, 3, 4])
        named = [rng.choice(phones), rng.choice(ips)]
        got = hit_many(cache, named, cost)
        assert got == reference.hit(timeline.now, named, cost), f"step {step}"
        if all(got) and cost:
            for key, _, _ in named:
                admitted[key].append((timeline.now, cost))
    for key, limit, window_ms in phones + ips:
        assert most_in_any_window(admitted[key], window_ms) <= limit + limit * 999 // 1000


def test_multi_key_gcra_is_retried_after_the_longest_wait_exactly(
    cache: Any, timeline: Timeline
) -> None:
    # phone: 2 per second (one every 500 ms); ip: 4 per second (one every 250 ms).
    both = [("{u}:phone", 2, 1000), ("{u}:ip", 4, 1000)]
    assert all(hit_many(cache, both, 1)) and all(hit_many(cache, both, 1))
    phone, ip = hit_many(cache, both, 1)
    assert phone == RateLimitResult(False, 2, 0, 1.0, 0.5)
    assert ip == RateLimitResult(True, 4, 2, 0.5, 0.0)  # untouched by the denied call
    # Another phone on the same IP takes the IP's last 2 units; now both keys deny.
    assert all(hit_many(cache, [("{u}:phone2", 2, 1000), ("{u}:ip", 4, 1000)], 2))
    waits = [result.retry_after for result in hit_many(cache, both, 1)]
    assert waits == [0.5, 0.25]
    timeline.advance(499)
    assert not all(hit_many(cache, both, 1))
    timeline.advance(1)
    assert all(hit_many(cache, both, 1))
    # One state per key, shared with the single-key calls.
    assert cache.hit_rate_limit("{u}:ip", 4, 1, cost=0, algorithm="gcra").remaining == 1


def test_multi_key_gcra_errors_change_nothing(cache: Any, store: Any) -> None:
    cache.hit_rate_limit("{e}:fw", 2, 10, algorithm="fixed_window")
    with pytest.raises(WrongTypeError, match=r"^one of the rate limits \['\{e\}:a', '\{e\}:fw'\]"):
        cache.hit_rate_limits([("{e}:a", 2, 10), ("{e}:fw", 2, 10)], algorithm="gcra")
    with pytest.raises(ValueError, match=SPAN_ERROR):
        cache.hit_rate_limits(
            [("{e}:a", 2, 10), ("{e}:big", 9_007_200, 1_000_000)], algorithm="gcra"
        )
    with pytest.raises(ValueError, match=r'^rate_limit_many keys must be distinct, "\{e\}:a"'):
        cache.hit_rate_limits([("{e}:a", 2, 10), ("{e}:a", 2, 10)], algorithm="gcra")
    assert store.keys() == ["ratelimit:{e}:fw"]
    assert cache.hit_rate_limits(
        [("{e}:a", 2, 10), ("{e}:big", 9_007_199, 1_000_000)], algorithm="gcra"
    )[1].allowed


def most_in_any_window(admitted: list[tuple[int, int]], window_ms: int) -> int:
    """Most units admitted in any half-open interval `(t - window_ms, t]`."""
    most = total = start = 0
    for t, cost in admitted:
        total += cost
        while admitted[start][0] + window_ms <= t:
            total -= admitted[start][1]
            start += 1
        most = max(most, total)
    return most


def test_gcra_replay_matches_the_reference_and_its_bound(
    request: pytest.FixtureRequest, cache: Any, timeline: Timeline
) -> None:
    rng = random.Random(20_000)
    most, bound = [], []
    for round_ in range(4):
        limit, window_ms = rng.choice([(1, 10), (3, 250), (10, 1000), (7, 3500)])
        reference, admitted = Reference(limit, window_ms), []
        for step in range(500):
            timeline.advance(rng.choice([0, 0, 1, rng.randrange(window_ms // 4 + 1), window_ms]))
            cost = rng.choice([0, 1, 1, 1, 2, limit, limit + 1])
            got = cache.hit_rate_limit(
                f"replay-{round_}", limit, window_ms / 1000, cost=cost, algorithm="gcra"
            )
            want = reference.hit(timeline.now, cost)
            assert got == RateLimitResult(want[0], limit, *want[1:]), f"{round_}/{step}"
            if got and cost:
                admitted.append((timeline.now, cost))
        most.append(most_in_any_window(admitted, window_ms))
        bound.append(limit + limit * (window_ms - 1) // window_ms)
        assert (
            most_in_any_window(admitted, window_ms) <= limit + limit * (window_ms - 1) // window_ms
        )
    figure(
        f"rate_limits.gcra_replay[{request.node.callspec.id}]",
        rounds=len(most),
        mismatches=0,
        most_in_any_window=most,
        bound=bound,
    )


def test_gcra_spaces_hits_after_the_burst_and_retry_after_is_exact(
    cache: Any, timeline: Timeline
) -> None:
    # 4 per second: a burst of 4, then one every 250 ms.
    burst = [cache.hit_rate_limit("api", 4, 1, algorithm="gcra") for _ in range(5)]
    assert [r.allowed for r in burst] == [True] * 4 + [False]
    assert burst[3] == RateLimitResult(True, 4, 0, 1.0, 0.0)
    assert burst[4] == RateLimitResult(False, 4, 0, 1.0, 0.25)
    timeline.advance(249)
    assert not cache.hit_rate_limit("api", 4, 1, algorithm="gcra")
    timeline.advance(1)
    assert cache.hit_rate_limit("api", 4, 1, algorithm="gcra") == RateLimitResult(
        True, 4, 0, 1.0, 0.0
    )
    # cost 2 needs two emission intervals to drain; a cost above the limit never fits.
    denied = cache.hit_rate_limit("api", 4, 1, cost=2, algorithm="gcra")
    assert (denied.allowed, denied.retry_after) == (False, 0.5)
    assert cache.hit_rate_limit("api", 4, 1, cost=5, algorithm="gcra").retry_after == 1.0
    timeline.advance(1000)
    assert cache.hit_rate_limit("api", 4, 1, cost=0, algorithm="gcra").remaining == 4


def test_gcra_state_is_one_key_and_holds_no_state_when_drained(
    cache: Any, store: Any, timeline: Timeline
) -> None:
    assert cache.hit_rate_limit("user:1", 2, 10, cost=0, algorithm="gcra").allowed
    assert store.keys() == []  # a peek on nothing records nothing
    cache.hit_rate_limit("user:1", 2, 10, algorithm="gcra")
    assert store.keys() == ["ratelimit:user:1"]
    # Every backend names the algorithm that holds the key.
    for other in ("fixed_window", "sliding_counter"):
        with pytest.raises(
            WrongTypeError,
            match=rf"^rate limit 'user:1': .*uses algorithm \"gcra\", not \"{other}\"",
        ):
            cache.hit_rate_limit("user:1", 2, 10, algorithm=other)
    with pytest.raises(WrongTypeError, match="rate limit 'user:1'"):
        cache.hit_rate_limit("user:1", 2, 10, algorithm="sliding_log")
    cache.hit_rate_limit("fw", 2, 10, algorithm="fixed_window")
    with pytest.raises(WrongTypeError, match=r"^rate limit 'fw': .*\"fixed_window\", not \"gcra\""):
        cache.hit_rate_limit("fw", 2, 10, algorithm="gcra")
    assert cache.hit_rate_limit("user:1", 2, 10, cost=0, algorithm="gcra").remaining == 1


SPAN_ERROR = r"^gcra needs limit \* window_ms < 2\*\*53, got limit=9007200 and window_ms=10{9}$"


def test_gcra_beyond_its_span_is_refused_alike_everywhere(cache: Any, store: Any) -> None:
    with pytest.raises(ValueError, match=SPAN_ERROR):
        cache.hit_rate_limit("big", 9_007_200, 1_000_000, algorithm="gcra")
    assert store.keys() == []
    assert cache.hit_rate_limit("big", 9_007_199, 1_000_000, algorithm="gcra")


@pytest.mark.parametrize("policy", ["memory", "fail_open", "fail_closed"])
def test_gcra_beyond_its_span_is_refused_during_fallback(
    svc: ServiceFactory, private_redis: RedisServer, policy: str
) -> None:
    cache = svc(
        CacheConfig(
            enabled=True,
            port=private_redis.port,
            connect_timeout_ms=500,
            command_timeout_ms=500,
            rate_limit_fallback=policy,
        )
    )
    private_redis.kill()
    with pytest.raises(ValueError, match=SPAN_ERROR):
        cache.hit_rate_limit("big", 9_007_200, 1_000_000, algorithm="gcra")
    result = cache.hit_rate_limit("big", 9_007_199, 1_000_000, algorithm="gcra")
    assert result.allowed is (policy != "fail_closed")
    with pytest.raises(ValueError, match=SPAN_ERROR):
        cache.hit_rate_limits([("a", 1, 1), ("big", 9_007_200, 1_000_000)], algorithm="gcra")
    results = cache.hit_rate_limits([("a", 1, 1), ("big", 9_007_199, 1)], algorithm="gcra")
    assert [r.allowed for r in results] == [policy != "fail_closed"] * 2


def test_gcra_through_the_decorator(cache: Any, timeline: Timeline) -> None:
    calls: list[int] = []

    @cache.rate_limited(limit=2, window_seconds=1, key="job:{n}", algorithm="gcra")
    def job(n: int) -> int:
        calls.append(n)
        return n

    assert [job(1), job(1)] == [1, 1]
    with pytest.raises(RateLimitExceeded) as caught:
        job(1)
    assert caught.value.retry_after == 0.5
    timeline.advance(500)
    assert job(1) == 1 and calls == [1, 1, 1]


@pytest.fixture
def harness(store: Any, service_config: CacheConfig | None) -> Iterator[Harness]:
    with open_harness("sync", store, service_config) as made:
        yield made


def test_gcra_through_fastapi(harness: Harness) -> None:
    @harness.app.get("/feed", dependencies=[Depends(RateLimit(2, 10, algorithm="gcra"))])
    def feed() -> list[int]:
        return [1]

    client = harness.start()
    assert [client.get("/feed").status_code for _ in range(3)] == [200, 200, 429]
    denied = client.get("/feed")
    assert denied.headers["Retry-After"] == "5"  # one emission interval: 10 s / 2
    harness.advance(4.999)
    assert client.get("/feed").status_code == 429
    harness.advance(0.001)
    assert client.get("/feed").status_code == 200


def test_gcra_on_server_time(svc: ServiceFactory, backend: str, request: Any) -> None:
    """Real time, no test clock: the script reads TIME; a short window refills as promised."""
    if backend == "memory":
        cache = svc(CacheConfig())
    else:
        cache = svc(request.getfixturevalue(f"{backend}_config"))
    assert [cache.hit_rate_limit("rt", 2, 0.3, algorithm="gcra").allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    denied = cache.hit_rate_limit("rt", 2, 0.3, algorithm="gcra")
    assert 0 < denied.retry_after <= 0.15
    time.sleep(denied.retry_after + 0.01)
    assert cache.hit_rate_limit("rt", 2, 0.3, algorithm="gcra").allowed


PLANTED = [
    {"alg": "gcra", "last": "1e18", "debt": 0, "per": 1},
    {"alg": "gcra", "last": 0, "debt": "inf", "per": 1},
    {"alg": "gcra", "last": 0, "debt": 5, "per": 0},  # debt without a unit
    {"alg": "gcra", "last": 0, "debt": "9" * 20, "per": 1},
    {"alg": "gcra", "last": 0},
    {"alg": "\x1b[31mSCAM", "last": 0, "debt": 0, "per": 1},
]


@pytest.mark.parametrize("state", PLANTED)
def test_planted_gcra_state_is_refused(
    svc: ServiceFactory, redis_config: CacheConfig, redis_client: redis.Redis, state: Any
) -> None:
    cache = svc(redis_config)
    redis_client.hset("ratelimit:k", mapping=state)
    with pytest.raises(WrongTypeError, match=r"^rate limit 'k': WRONGTYPE") as caught:
        cache.hit_rate_limit("k", 5, 60, algorithm="gcra")
    assert "SCAM" not in str(caught.value)
    many = r"^one of the rate limits \['other', 'k'\]: WRONGTYPE"
    with pytest.raises(WrongTypeError, match=many):
        cache.hit_rate_limits([("other", 5, 60), ("k", 5, 60)], algorithm="gcra")
    assert redis_client.exists("ratelimit:other") == 0
    assert redis_client.hgetall("ratelimit:k") == {k: str(v) for k, v in state.items()}
