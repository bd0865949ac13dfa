"""Prometheus metrics of a cache service (extra `cachebolt[prometheus]`); README "Metrics".

A collector reads `stats_snapshot()` and each limiter's `stats` at scrape time: no per-call
instrumentation, no I/O, and labels from bounded sets only (never keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised by the import test
    raise ImportError(
        'cachebolt.metrics needs prometheus_client: pip install "cachebolt[prometheus]"'
    ) from exc

__all__ = ["CacheCollector", "register_metrics"]

# (stats key, metric name, help) of the monotonic counters.
_COUNTERS = (
    ("hits", "cachebolt_cache_hits", "Lookups that found a value."),
    ("misses", "cachebolt_cache_misses", "Lookups that found nothing."),
    (
        "coalesced",
        "cachebolt_cache_coalesced",
        "get_or_set misses that took another caller's computed value (counted as hits).",
    ),
    ("lock_acquired", "cachebolt_lock_acquired", "Locks taken."),
    ("lock_contended", "cachebolt_lock_contended", "Lock attempts that found the lock held."),
    ("evictions", "cachebolt_evictions", "Keys evicted by the memory bound."),
    ("expired", "cachebolt_expired", "Keys removed because their TTL ran out."),
    ("fallback_calls", "cachebolt_fallback_calls", "Calls served by memory while Redis was down."),
    ("fallback_locks", "cachebolt_fallback_locks", "Locks taken in memory while Redis was down."),
    (
        "fallback_rate_limits",
        "cachebolt_fallback_rate_limits",
        "Rate-limit checks counted in memory while Redis was down.",
    ),
    ("decode_errors", "cachebolt_decode_errors", "Stored values that were not JSON, recomputed."),
)
_GAUGES = (
    ("hit_rate", "cachebolt_cache_hit_ratio", "hits / (hits + misses)."),
    ("keys", "cachebolt_keys", "Live keys in the serving backend."),
    ("used_bytes", "cachebolt_used_bytes", "Bytes held by evictable keys of the memory backend."),
)
_BACKENDS = ("memory", "redis")


class _Service(Protocol):
    def stats_snapshot(self) -> Any: ...


class _Limiter(Protocol):
    name: str

    def decision_counts(self) -> dict[tuple[str, str], int]: ...

    def escalation_counts(self) -> dict[tuple[str, str], int]: ...


class CacheCollector(Collector):
    """Reads a service's counters (and its domain limiters') at scrape time.

    Args:
        cache: a `CacheService` or `AsyncCacheService`.
        name: the `name` label of every sample (one per service in a process).
        limiters: `EnhancedRateLimitService`s (either flavour) to export too.
    """

    def __init__(self, cache: _Service, name: str, limiters: Sequence[_Limiter] = ()) -> None:
        if not callable(getattr(cache, "stats_snapshot", None)):
            raise TypeError(f"cache must be a cachebolt service, not {type(cache).__name__}")
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty str")
        self._cache = cache
        self._name = name
        self._limiters = tuple(limiters)

    def describe(self) -> Iterable[Metric]:
        # The registry checks the names for duplicates, whatever its auto_describe setting.
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        stats = self._cache.stats_snapshot()
        name = self._name
        for key, metric, doc in _COUNTERS:
            family = CounterMetricFamily(metric, doc, labels=["name"])
            family.add_metric([name], stats[key])
            yield family
        decisions = CounterMetricFamily(
            "cachebolt_rate_limit_decisions",
            "Rate-limit checks by outcome.",
            labels=["name", "outcome"],
        )
        decisions.add_metric([name, "allowed"], stats["rate_limit_allowed"])
        decisions.add_metric([name, "denied"], stats["rate_limit_denied"])
        yield decisions
        for key, metric, doc in _GAUGES:
            gauge = GaugeMetricFamily(metric, doc, labels=["name"])
            gauge.add_metric([name], stats[key])
            yield gauge
        available = GaugeMetricFamily(
            "cachebolt_redis_available", "1 when Redis serves the calls.", labels=["name"]
        )
        available.add_metric([name], 1.0 if stats["redis_available"] else 0.0)
        yield available
        backend = GaugeMetricFamily(
            "cachebolt_backend",
            "1 for the backend serving the calls now.",
            labels=["name", "backend"],
        )
        for option in _BACKENDS:
            backend.add_metric([name, option], 1.0 if stats["backend"] == option else 0.0)
        yield backend
        yield from self._domain(name)

    def _domain(self, name: str) -> Iterable[Metric]:
        if not self._limiters:
            return
        decisions = CounterMetricFamily(
            "cachebolt_domain_decisions",
            "Domain rate-limit checks by action and outcome (allowed, denied, blocked).",
            labels=["name", "limiter", "action", "outcome"],
        )
        escalations = CounterMetricFamily(
            "cachebolt_domain_escalations",
            "Temporary blocks started after repeated violations.",
            labels=["name", "limiter", "action", "subject"],
        )
        for limiter in self._limiters:
            for (action, outcome), count in sorted(limiter.decision_counts().items()):
                decisions.add_metric([name, limiter.name, action, outcome], count)
            for (action, subject), count in sorted(limiter.escalation_counts().items()):
                escalations.add_metric([name, limiter.name, action, subject], count)
        yield decisions
        yield escalations


def register_metrics(
    cache: _Service,
    registry: CollectorRegistry | None = None,
    *,
    name: str = "default",
    limiters: Sequence[_Limiter] = (),
) -> CacheCollector:
    """Export `cache`'s counters (and `limiters`') to `registry` (default: the global one).

    One collector per registry; register after building the limiters you pass.

    Returns:
        The collector (`registry.unregister(collector)` removes it).

    Raises:
        ValueError: the registry already holds cachebolt metrics (duplicate names).
    """
    collector = CacheCollector(cache, name, limiters)
    (REGISTRY if registry is None else registry).register(collector)
    return collector
