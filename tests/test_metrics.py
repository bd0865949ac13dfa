"""`cachebolt.metrics`: the Prometheus exposition of `stats()` with bounded label sets."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cachebolt import CacheService, EnhancedRateLimitService
from cachebolt.metrics import register_metrics
from conftest import wait_until
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exposition_shows_the_counters_with_bounded_labels(cache: Any) -> None:
    limiter_cache = CacheService()  # its block lookups would count as misses of `cache`
    limiter = EnhancedRateLimitService(limiter_cache, name="auth")
    registry = CollectorRegistry()
    register_metrics(cache, registry, name="api", limiters=[limiter])
    cache.set("user:1", {"n": 1})
    cache.get("user:1")
    cache.get("user:2")
    cache.get("user:3")
    token = cache.acquire_lock("job", 1000)
    assert cache.acquire_lock("job", 1000) is None
    cache.release_lock("job", token)
    cache.check_rate_limit("ip:1", 1, 60)
    cache.check_rate_limit("ip:1", 1, 60)
    limiter.check_otp("+15550100", "10.0.0.1")
    samples = _samples(registry)
    name = (("name", "api"),)
    assert samples["cachebolt_cache_hits_total", name] == 1
    assert samples["cachebolt_cache_misses_total", name] == 2
    assert samples["cachebolt_cache_hit_ratio", name] == pytest.approx(1 / 3)
    assert samples["cachebolt_lock_acquired_total", name] == 1
    assert samples["cachebolt_lock_contended_total", name] == 1
    assert (
        samples["cachebolt_rate_limit_decisions_total", (("name", "api"), ("outcome", "denied"))]
        == 1
    )
    backend = cache.stats()["backend"]
    assert samples["cachebolt_backend", (("backend", backend), ("name", "api"))] == 1
    assert samples["cachebolt_redis_available", name] == float(backend == "redis")
    otp = (("action", "otp"), ("limiter", "auth"), ("name", "api"), ("outcome", "allowed"))
    assert samples["cachebolt_domain_decisions_total", otp] == 1
    # Bounded labels: no key, phone or IP ever becomes a label value.
    labels = {value for (_, pairs) in samples for (_, value) in pairs}
    assert labels <= {"api", "auth", "otp", "allowed", "denied", "memory", "redis"}
    limiter_cache.close()


def test_coalesced_get_or_set_callers_are_exported_beside_hits(sync_cache: CacheService) -> None:
    registry = CollectorRegistry()
    register_metrics(sync_cache, registry, name="api")

    flights = sync_cache._flights  # type: ignore[attr-defined]

    def compute() -> int:
        wait_until(lambda: flights._flights["cold"].waiters == 1)  # the other caller waits
        return 1

    callers = [
        threading.Thread(target=sync_cache.get_or_set, args=("cold", 60, compute)) for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    samples = _samples(registry)
    name = (("name", "api"),)
    assert samples["cachebolt_cache_coalesced_total", name] == 1
    assert samples["cachebolt_cache_hits_total", name] == 1
    assert samples["cachebolt_cache_misses_total", name] == 1


def test_one_collector_per_registry_and_bad_arguments() -> None:
    registry = CollectorRegistry()
    with CacheService() as cache:
        register_metrics(cache, registry)
        with pytest.raises(ValueError):
            register_metrics(cache, registry, name="other")
        with pytest.raises(TypeError, match="cachebolt service"):
            register_metrics(object(), CollectorRegistry())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name"):
            register_metrics(cache, CollectorRegistry(), name="")
