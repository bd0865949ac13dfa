"""`EnhancedRateLimitService`: rule table, tiers, normalisation, atomic multi-dimension checks,
escalation to temporary blocks; on memory, Redis and the cluster, sync and async.

On Redis the rate-limit scripts read the test's clock (`_test_clock`, the emulated clock of
`RedisStoreView`), so windows move with `clock.advance` there too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from typing import Any

import pytest
from cachebolt import (
    CacheConfig,
    CacheService,
    Dimension,
    DomainLimitResult,
    EnhancedRateLimitService,
    Escalation,
)
from cachebolt.rate_limits import (
    DEFAULT_RULES,
    DEFAULT_TIERS,
    AsyncEnhancedRateLimitService,
    canonical_user_id,
    normalize_ip,
    normalize_phone,
)
from conftest import Clock, RedisStoreView, SyncProxy

ORIGIN_MS = 1_700_000_000_000


def _service(cache: Any) -> Any:
    return cache.service if isinstance(cache, SyncProxy) else cache


def make_limiter(cache: Any, store: Any, **kwargs: Any) -> Any:
    """A limiter of the cache's flavour; on Redis its scripts follow the emulated clock."""
    service = _service(cache)
    if isinstance(store, RedisStoreView):
        service._fallback._primary._test_clock = lambda: ORIGIN_MS + store.virtual_ms
    if isinstance(cache, SyncProxy):
        return SyncProxy(AsyncEnhancedRateLimitService(service, **kwargs), cache.runner)
    return EnhancedRateLimitService(cache, **kwargs)


@pytest.fixture
def limiter(cache: Any, store: Any) -> Any:
    return make_limiter(cache, store)


PHONE = "+1 (555) 010-0100"
IP = "203.0.113.7"


def test_default_rules_follow_the_original() -> None:
    shape = {a: [(d.name, d.subject, d.tiered) for d in dims] for a, dims in DEFAULT_RULES.items()}
    assert shape == {
        "otp": [("phone", "phone", False), ("ip", "ip", False)],
        "upload": [("user_day", "user", True), ("user_week", "user", True)],
        "endpoint": [("user", "user", True), ("ip", "ip", False)],
    }
    assert [d.window_seconds for d in DEFAULT_RULES["upload"]] == [86_400, 7 * 86_400]
    assert dict(DEFAULT_TIERS) == {"bronze": 1, "silver": 2, "gold": 5, "diamond": 10}


def test_otp_defaults_deny_the_sixth_send_per_phone(limiter: Any) -> None:
    results = [limiter.check_otp(PHONE, IP) for _ in range(6)]
    assert [bool(r) for r in results] == [True] * 5 + [False]
    denied = results[-1]
    assert denied.dimension == "phone" and not denied.blocked
    assert denied.retry_after == pytest.approx(3600, abs=1)
    assert denied.dimensions["phone"].remaining == 0
    assert denied.dimensions["ip"].allowed and denied.dimensions["ip"].remaining == 15
    # The IP kept its quota: another phone from the same IP is admitted.
    assert limiter.check_otp("+15550100999", IP).dimensions["ip"].remaining == 14


def test_tiers_scale_the_per_user_limits(limiter: Any) -> None:
    assert limiter.check_upload(1, cost=10)  # bronze: 10 per day
    denied = limiter.check_upload(1)
    assert not denied and denied.dimension == "user_day"
    assert limiter.check_upload(2, tier="Gold", cost=50)  # gold x5: 50 per day
    assert not limiter.check_upload(2, tier="gold")
    diamond = limiter.check_upload(3, tier="diamond", cost=100)
    assert diamond and diamond.dimensions["user_week"].limit == 500
    # Abuse guards do not scale: 300 per minute per IP whatever the tier.
    endpoint = limiter.check_endpoint("POST /orders", user_id=4, ip=IP, tier="diamond")
    assert endpoint.dimensions["user"].limit == 1000 and endpoint.dimensions["ip"].limit == 300
    with pytest.raises(ValueError, match="tier"):
        limiter.check_upload(5, tier="platinum")


def test_endpoints_have_their_own_quota(cache: Any, store: Any) -> None:
    rules = {"endpoint": (Dimension("user", "user", 1, 60),)}
    limiter = make_limiter(cache, store, rules=rules)
    assert limiter.check_endpoint("POST /orders", user_id=7)
    assert not limiter.check_endpoint("POST /orders", user_id=7)
    assert limiter.check_endpoint("GET /feed", user_id=7)


def test_phone_normalisation_and_ipv6_grouping(cache: Any, store: Any) -> None:
    rules = {"otp": (Dimension("phone", "phone", 1, 60), Dimension("ip", "ip", 1, 60))}
    limiter = make_limiter(cache, store, rules=rules)
    assert limiter.check("otp", phone="+1 (555) 010-0100")
    assert limiter.check("otp", phone="+1-555-010-0100").dimension == "phone"
    assert limiter.check("otp", ip="2001:db8:1:2::1")
    assert limiter.check("otp", ip="2001:db8:1:2:ffff:ffff:ffff:ffff").dimension == "ip"
    assert limiter.check("otp", ip="2001:db8:1:3::1")  # another /64
    assert limiter.check("otp", ip="198.51.100.1")
    assert limiter.check("otp", ip="::ffff:198.51.100.1").dimension == "ip"  # IPv4-mapped


def test_normalisers() -> None:
    assert normalize_phone(" +44 20 7946.0958 ") == "+442079460958"
    assert normalize_phone("(555) 010-0100", "1") == "+15550100100"
    assert normalize_ip("2001:DB8::1") == "2001:db8::/64"
    assert normalize_ip("::ffff:10.0.0.1") == "10.0.0.1"
    for bad in ["", "+", "+12345", "+1 555 CALL NOW", "+" + "1" * 16, "++15550100", "١٢٣٤٥٦٧"]:
        with pytest.raises(ValueError, match="phone"):
            normalize_phone(bad)
    for bad_ip in ["", "10.0.0.256", "example.com", "2001:db8::/64"]:
        with pytest.raises(ValueError, match="ip"):
            normalize_ip(bad_ip)
    with pytest.raises(TypeError, match="phone"):
        normalize_phone(15550100)
    with pytest.raises(TypeError, match="ip"):
        normalize_ip(None)


SPELLINGS_OF_ONE_PHONE = [
    "+15550100100",
    "15550100100",
    "0015550100100",
    "+1 555 010 0100",
    "(555) 010-0100",
    "555.010.0100",
    "+1-555-010-0100",
    "001 555 0100100",
    "1 (555) 010 0100",
    "5550100100",
]


def test_phones_are_normalised_to_e164() -> None:
    for spelling in SPELLINGS_OF_ONE_PHONE:
        assert normalize_phone(spelling, "1") == "+15550100100", spelling
    assert normalize_phone("020 7946 0958", "44") == "+442079460958"  # trunk prefix 0 dropped
    assert normalize_phone("0044 20 7946 0958", "1") == "+442079460958"
    assert normalize_phone("8 495 123-45-67", "7") == "+74951234567"
    refused = {
        "+015550100100": "no country code starts with 0",
        "000015550100100": "no country code starts with 0",
        "15550100100": "no country code",  # national, and no default country code
        "+1555": "7 to 15 digits",
        "+1555010010012345": "7 to 15 digits",
        "+1 555 010 0100 ext 7": "7 to 15 digits",
        "tel:+15550100100": "7 to 15 digits",
        "+" + "".join(chr(0xFF10 + int(d)) for d in "15550100100"): "7 to 15",  # full-width digits
    }
    for phone, words in refused.items():
        with pytest.raises(ValueError, match=words):
            normalize_phone(phone)
    for code, error in [
        ("0", ValueError),
        ("1234", ValueError),
        ("+1", ValueError),
        (1, TypeError),
    ]:
        with pytest.raises(error, match="default_country_code"):
            normalize_phone("5550100100", code)  # type: ignore[arg-type]
        with pytest.raises(error, match="default_country_code"):
            EnhancedRateLimitService(CacheService(), default_country_code=code)  # type: ignore[arg-type]


def test_spellings_of_one_phone_share_its_quota(cache: Any, store: Any) -> None:
    # 10 spellings of one phone, each from its own IP, 5 tries each: 5 OTPs in all, not 49.
    limiter = make_limiter(cache, store, default_country_code="1")
    admitted = 0
    for n, spelling in enumerate(SPELLINGS_OF_ONE_PHONE):
        for _ in range(5):
            admitted += bool(limiter.check_otp(spelling, f"198.51.100.{n + 1}"))
    assert admitted == 5
    assert {k.rsplit(":", 1)[1] for k in store.keys("*") if ":phone:" in k} == {"+15550100100"}
    with pytest.raises(ValueError, match="country code starts with 0"):
        limiter.check_otp("+015550100100", "198.51.100.99")


def test_user_ids_are_canonical() -> None:
    for spelling in ["ada", "Ada", "ADA", " ada", "ada\t", "\uff41\uff44\uff41"]:
        assert canonical_user_id(spelling) == "ada", repr(spelling)
    assert canonical_user_id("Straße") == canonical_user_id("STRASSE") == "strasse"
    assert canonical_user_id(42) == "42"
    for invisible in ["\u200b", "\ufeff", "\u202e", "\u2066", "\u00ad", "\u034f", "\x00", "\ufe0f"]:
        with pytest.raises(ValueError, match=f"U\\+{ord(invisible):04X}"):
            canonical_user_id("ada" + invisible)
    for empty in ["", "   "]:
        with pytest.raises(ValueError, match="non-empty"):
            canonical_user_id(empty)
    for wrong in [True, 1.5, None, b"ada"]:
        with pytest.raises(TypeError, match="user_id"):
            canonical_user_id(wrong)


def test_spellings_of_one_user_share_its_quota(cache: Any, store: Any) -> None:
    limiter = make_limiter(cache, store)
    admitted = [
        bool(limiter.check_upload(u))
        for u in ["ada", "Ada", "ADA", " ada", "\uff41\uff44\uff41"] * 3
    ]
    assert sum(admitted) == 10  # bronze: 10 uploads per day, whatever the spelling
    with pytest.raises(ValueError, match="U\\+200B"):
        limiter.check_upload("ada\u200b")
    assert [k for k in store.keys("*") if "user_day" in k] == ["ratelimit:{upload}:user_day:ada"]


def test_the_user_id_rule_can_be_replaced(cache: Any, store: Any) -> None:
    rules = {"upload": (Dimension("user_day", "user", 1, 60),)}
    limiter = make_limiter(cache, store, rules=rules, canonical_user_id=str)  # case-sensitive
    assert limiter.check_upload("Ada") and limiter.check_upload("ada")
    assert not limiter.check_upload("Ada")
    empty = make_limiter(cache, store, rules=rules, canonical_user_id=lambda _: "")
    with pytest.raises(ValueError, match="canonical_user_id must return a non-empty str"):
        empty.check_upload("ada")
    with pytest.raises(TypeError, match="canonical_user_id must be callable"):
        make_limiter(cache, store, canonical_user_id="lower")


def test_bad_input_raises_and_changes_nothing(limiter: Any, store: Any) -> None:
    bad_calls = [
        (ValueError, "phone", lambda: limiter.check_otp("call me", IP)),
        (ValueError, "ip", lambda: limiter.check_otp(PHONE, "10.0.0.999")),
        (ValueError, "unknown action", lambda: limiter.check("login", ip=IP)),
        (ValueError, "needs at least one", lambda: limiter.check("otp")),
        (ValueError, "cost", lambda: limiter.check_upload(1, cost=-1)),
        (TypeError, "user_id", lambda: limiter.check_upload(1.5)),
        (ValueError, "U\\+202E", lambda: limiter.check_upload("ada\u202e")),
        (ValueError, "no country code", lambda: limiter.check_otp("5550100100", IP)),
        (ValueError, "tier", lambda: limiter.check_otp(PHONE, IP, tier=3)),
    ]
    for error, words, call in bad_calls:
        with pytest.raises(error, match=words):
            call()
    assert store.keys() == []
    assert limiter.stats()["allowed"] == limiter.stats()["denied"] == 0


def test_bad_rule_tables_are_refused() -> None:
    cache = CacheService()
    with pytest.raises(ValueError, match="subject"):
        Dimension("x", "device", 1, 60)
    with pytest.raises(ValueError, match="limit"):
        Dimension("x", "ip", 0, 60)
    with pytest.raises(ValueError, match="action names"):
        EnhancedRateLimitService(cache, rules={"a b": (Dimension("x", "ip", 1, 60),)})
    with pytest.raises(ValueError, match="one name"):
        EnhancedRateLimitService(
            cache, rules={"a": (Dimension("x", "ip", 1, 60), Dimension("x", "user", 1, 60))}
        )
    with pytest.raises(ValueError, match="tiers"):
        EnhancedRateLimitService(cache, tiers={"gold": 0})
    cache.close()


def test_denied_request_consumes_no_dimension(cache: Any, store: Any) -> None:
    rules = {"otp": (Dimension("phone", "phone", 1, 60), Dimension("ip", "ip", 3, 60))}
    limiter = make_limiter(cache, store, rules=rules)
    assert limiter.check_otp("+15550001", IP)
    for _ in range(3):
        assert limiter.check_otp("+15550001", IP).dimension == "phone"  # IP untouched
    assert limiter.check_otp("+15550002", IP)
    assert limiter.check_otp("+15550003", IP)
    denied = limiter.check_otp("+15550004", IP)
    assert denied.dimension == "ip" and denied.dimensions["phone"].remaining == 1
    assert limiter.check_otp("+15550004", "198.51.100.9")  # its phone quota was not eaten


def test_concurrent_overlapping_checks_admit_exactly_the_oracle(cache: Any, store: Any) -> None:
    # Phase 1: 4 phones (3 each) on one IP (5): exactly 5 admitted whatever the interleaving.
    # Phase 2: the same phones on a roomy IP: exactly 12 - 5 more, so no denial of phase 1 ate
    # a phone's quota. Every dimension ends exactly at its limit, never above.
    rules = {"otp": (Dimension("phone", "phone", 3, 600), Dimension("ip", "ip", 5, 600))}
    limiter = make_limiter(cache, store, rules=rules)
    phones = [f"+1555000{i:04d}" for i in range(4)]

    def run(ip: str) -> dict[str, int]:
        admitted = dict.fromkeys(phones, 0)
        lock = threading.Lock()

        def worker(n: int) -> None:
            for k in range(8):
                phone = phones[(n + k) % 4]
                if limiter.check_otp(phone, ip):
                    with lock:
                        admitted[phone] += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return admitted

    first = run("198.51.100.1")
    assert sum(first.values()) == 5 and max(first.values()) <= 3
    roomy = make_limiter(
        cache,
        store,
        rules={"otp": (Dimension("phone", "phone", 3, 600), Dimension("ip", "ip", 100, 600))},
    )
    limiter = roomy
    second = run("198.51.100.2")
    assert {p: first[p] + second[p] for p in phones} == dict.fromkeys(phones, 3)


def one_otp_then_escalate(cache: Any, store: Any) -> Any:
    """One OTP per phone per 30 s; the third violation in 60 s blocks the phone for 120 s."""
    return make_limiter(
        cache,
        store,
        rules={"otp": (Dimension("phone", "phone", 1, 30), Dimension("ip", "ip", 50, 30))},
        escalation=Escalation(violations=3, window_seconds=60, block_seconds=120),
    )


def test_escalation_blocks_then_expires(
    cache: Any, store: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    limiter = one_otp_then_escalate(cache, store)
    assert limiter.check_otp(PHONE, IP)
    outcomes = [limiter.check_otp(PHONE, IP) for _ in range(3)]
    assert [r.blocked for r in outcomes] == [False, False, False]
    blocked = limiter.check_otp(PHONE, IP)
    assert not blocked and blocked.blocked and blocked.dimension == "phone"
    assert 100 < blocked.retry_after <= 120
    assert blocked.dimensions == {}
    # The block is per subject: another phone on the same IP goes through.
    assert limiter.check_otp("+15550100777", IP)
    clock.advance(100)  # the phone's window has passed, the block has not
    assert limiter.check_otp(PHONE, IP).blocked
    clock.advance(21)
    assert limiter.check_otp(PHONE, IP)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(":")[0] for w in warnings] == [
        "repeated rate limit violation",
        "rate limit escalation",
    ]
    assert "+15" in warnings[-1] and "0100" not in warnings[-1]  # the number is masked
    stats = limiter.stats()
    assert (stats["otp_allowed"], stats["otp_denied"], stats["otp_blocked"]) == (3, 3, 2)
    assert stats["escalations"] == 1


@pytest.mark.parametrize(
    ("action", "cost", "admitted", "window"), [("otp", 1, 5, 3600), ("upload", 3, 3, 86_400)]
)
def test_a_client_that_obeys_retry_after_is_admitted_then(
    cache: Any, store: Any, clock: Clock, action: str, cost: int, admitted: int, window: int
) -> None:
    # The default block (15 min) ends long before the limit that caused it (1 h per phone,
    # 10 uploads a day): retry_after is the later of the two, for the request's own cost.
    limiter = make_limiter(cache, store)

    def attempt() -> Any:
        if action == "otp":
            return limiter.check_otp(PHONE, IP)
        return limiter.check_upload("u1", cost=cost)

    assert all(attempt() for _ in range(admitted))
    clock.advance(10)
    denials = [attempt() for _ in range(5)]  # the fifth violation starts the block
    assert [(d.allowed, d.blocked) for d in denials] == [(False, False)] * 5
    assert limiter.stats()["escalations"] == 1
    blocked = attempt()
    assert blocked.blocked
    for denial in (*denials, blocked):
        assert denial.retry_after == pytest.approx(window - 10, abs=0.001)
    clock.advance(blocked.retry_after - 0.01)
    assert not attempt()
    clock.advance(0.01)
    assert attempt()


def test_a_block_longer_than_the_limit_sets_retry_after(cache: Any, store: Any) -> None:
    limiter = one_otp_then_escalate(cache, store)  # 1 per 30 s; block_seconds=120
    assert limiter.check_otp(PHONE, IP)
    denials = [limiter.check_otp(PHONE, IP) for _ in range(3)]
    assert [d.retry_after for d in denials] == [30, 30, 120]  # the third starts the block


def test_concurrent_violations_escalate_once(
    cache: Any, store: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    escalation = Escalation(violations=5, window_seconds=600, block_seconds=120)
    limiter = make_limiter(cache, store, escalation=escalation)
    assert limiter.check_upload("u1", cost=10)  # the day's quota
    service_type = type(_service(cache))
    original_set = service_type.set
    block_writes: list[str] = []

    def counting_set(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if key.startswith("domain-block:"):
            block_writes.append(key)
        return original_set(self, key, *args, **kwargs)

    monkeypatch.setattr(service_type, "set", counting_set)
    if isinstance(limiter, SyncProxy):  # 50 asyncio tasks on one loop

        async def burst() -> list[Any]:
            return list(
                await asyncio.gather(*(limiter.service.check_upload("u1") for _ in range(50)))
            )

        results = limiter.runner.run(burst())
    else:  # 50 threads
        results = [None] * 50
        start = threading.Barrier(50)

        def worker(n: int) -> None:
            start.wait()
            results[n] = limiter.check_upload("u1")

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not any(results)
    assert limiter.stats()["escalations"] == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(m.startswith("rate limit escalation") for m in messages) == 1
    assert block_writes == ["domain-block:{upload}:user:u1"]  # one write: its TTL never re-set
    assert 0 < cache.ttl("domain-block:{upload}:user:u1") <= 120


def test_peeks_at_an_exhausted_limit_never_escalate(cache: Any, store: Any) -> None:
    limiter = one_otp_then_escalate(cache, store)
    assert limiter.check_otp(PHONE, IP)
    peeks = [limiter.check("otp", phone=PHONE, ip=IP, cost=0) for _ in range(6)]
    assert [(p.allowed, p.blocked, p.dimension) for p in peeks] == [(False, False, "phone")] * 6
    assert limiter.stats()["escalations"] == 0
    assert not limiter.check_otp(PHONE, IP).blocked  # an attempt is the first violation


def test_result_is_frozen_and_truthy() -> None:
    result = DomainLimitResult(True, "otp", None, 0.0)
    assert bool(result) and not DomainLimitResult(False, "otp", "ip", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.allowed = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("policy", "allowed"), [("fail_open", True), ("fail_closed", False), ("memory", True)]
)
def test_multi_key_limits_follow_the_fallback_policy(policy: str, allowed: bool) -> None:
    config = CacheConfig(
        enabled=True, host="127.0.0.1", port=1, connect_timeout_ms=200, rate_limit_fallback=policy
    )
    with CacheService(config) as cache:
        results = cache.hit_rate_limits([("a", 2, 60), ("b", 2, 60)])
        assert [r.allowed for r in results] == [allowed, allowed]
        with pytest.raises(ValueError, match="distinct"):
            cache.hit_rate_limits([("a", 2, 60), ("a", 2, 60)])
        assert cache.stats()["fallback_calls"] >= 1


def test_cluster_keys_must_share_a_slot(cluster_config: CacheConfig) -> None:
    with CacheService(cluster_config) as cache:
        with pytest.raises(ValueError, match="hash tag"):
            cache.hit_rate_limits([("a", 1, 60), ("b", 1, 60)])
        assert cache.hit_rate_limits([("{t}:a", 1, 60), ("{t}:b", 1, 60)])[0].allowed


def test_a_planted_block_is_capped_and_shows_no_stored_text(
    cache: Any, store: Any, clock: Clock
) -> None:
    # Blocks written by another Redis client: without TTL, with a longer one, of another type,
    # not JSON. Each blocks for at most block_seconds and names a configured dimension.
    limiter = one_otp_then_escalate(cache, store)  # block_seconds=120
    planted = {
        "+15550100001": (b'{"dimension": "\\u001b[31mcall +1 900 SCAM"}', None),
        "+15550100002": (b'{"dimension": "ip"}', 10 * 86_400),  # a dimension of another subject
        "+15550100003": (b"\xff not json \x1b[2J", None),
    }
    for phone, (raw, ttl) in planted.items():
        store.set(f"domain-block:{{otp}}:phone:{phone}", raw, ttl)
    cache.hset("domain-block:{otp}:phone:+15550100004", "dimension", "\x1b[31mevil")
    phones = [*planted, "+15550100004"]
    for phone in phones:
        blocked = limiter.check_otp(phone, IP)
        assert (blocked.allowed, blocked.blocked, blocked.dimension) == (False, True, "phone")
        assert 0 < blocked.retry_after <= 120
        assert 0 < cache.ttl(f"domain-block:{{otp}}:phone:{phone}") <= 120
    clock.advance(121)
    assert all(limiter.check_otp(phone, IP) for phone in phones)
