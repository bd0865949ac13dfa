# generated from _async by scripts/unasync.py; do not edit
"""`EnhancedRateLimitService`: domain-aware rate limits (OTP, uploads, endpoints) with tiers.

Every dimension of a request is checked in one atomic `hit_rate_limits` step; limits, windows and
tiers are data (`cachebolt._domain`). docs/semantics.md ("Domain rate limits") states the hash
tags, escalation to blocks and `retry_after`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence

from .._domain import (
    DEFAULT_ESCALATION,
    DEFAULT_RULES,
    DEFAULT_TIERS,
    Dimension,
    DomainLimitResult,
    Escalation,
    Plan,
    block_key,
    check_country_code,
    check_rules,
    check_tiers,
    plan_check,
    violation_key,
)
from .._domain import canonical_user_id as _canonical_user_id
from .._redact import get_logger
from .._results import RateLimitResult
from ..exceptions import SerializationError, WrongTypeError
from .service import CacheService

__all__ = ["EnhancedRateLimitService"]

_logger = get_logger()


class EnhancedRateLimitService:
    """Domain rate limits over a cache service: every dimension of a request checked together.

    Args:
        cache: the service that stores the limits (memory or Redis; the fallback applies).
        rules: action -> dimensions (`cachebolt.rate_limits.Dimension`); None for
            `DEFAULT_RULES` (otp, upload, endpoint).
        tiers: tier name (case-insensitive) -> multiplier of the `tiered` dimensions; None for
            `DEFAULT_TIERS` (bronze 1, silver 2, gold 5, diamond 10).
        escalation: when repeated violations become a temporary block; None for
            `DEFAULT_ESCALATION` (5 violations in 10 minutes block for 15 minutes).
        name: this limiter's name in logs and metrics.
        default_country_code: the calling code of phone numbers given without one ("1", "44");
            None refuses them.
        canonical_user_id: maps a user id (str or int) to its key (a non-empty str); None for
            `cachebolt.rate_limits.canonical_user_id`.

    Raises:
        TypeError, ValueError: a bad rule table, tier table, escalation or country code.
    """

    def __init__(
        self,
        cache: CacheService,
        *,
        rules: Mapping[str, Sequence[Dimension]] | None = None,
        tiers: Mapping[str, float] | None = None,
        escalation: Escalation | None = None,
        name: str = "default",
        default_country_code: str | None = None,
        canonical_user_id: Callable[[str | int], str] | None = None,
    ) -> None:
        self._cache = cache
        self._country_code = check_country_code(default_country_code)
        self._user_rule = _canonical_user_id if canonical_user_id is None else canonical_user_id
        if not callable(self._user_rule):
            raise TypeError("canonical_user_id must be callable")
        self._rules = check_rules(DEFAULT_RULES if rules is None else rules)
        self._tiers = check_tiers(DEFAULT_TIERS if tiers is None else tiers)
        self._escalation = DEFAULT_ESCALATION if escalation is None else escalation
        if not isinstance(self._escalation, Escalation):
            raise TypeError(f"escalation must be an Escalation, not {type(escalation).__name__}")
        self.name = name
        # Counters: updated after the I/O of a check, under a lock that is never awaited on.
        self._counts_lock = threading.Lock()
        self._decisions: dict[tuple[str, str], int] = {}
        self._escalations: dict[tuple[str, str], int] = {}

    @property
    def rules(self) -> Mapping[str, tuple[Dimension, ...]]:
        """The rule table in force (action -> dimensions)."""
        return dict(self._rules)

    @property
    def tiers(self) -> Mapping[str, float]:
        """The tier multipliers in force."""
        return dict(self._tiers)

    def check(
        self,
        action: str,
        *,
        user_id: str | int | None = None,
        ip: str | None = None,
        phone: str | None = None,
        tier: str | None = None,
        cost: int = 1,
        scope: str | None = None,
    ) -> DomainLimitResult:
        """Check (and on success record) one request against every dimension of `action`.

        Dimensions whose subject is not given are skipped; at least one must apply.

        Args:
            action: a key of the rule table ("otp", "upload", "endpoint", ...).
            user_id: the authenticated user, for "user" dimensions (canonicalised).
            ip: the client address, for "ip" dimensions (IPv6 grouped by /64).
            phone: the phone number, for "phone" dimensions (normalised to E.164).
            tier: the user's tier ("bronze", "silver", "gold", "diamond"); None: the base limits.
            cost: units the request takes in every dimension (0 peeks).
            scope: separates otherwise equal keys, e.g. the endpoint of per-endpoint limits.

        Returns:
            The outcome, truthy when allowed; a denied request consumed no dimension's quota.

        Raises:
            TypeError, ValueError: a bad argument (named in the message); nothing is changed.
        """
        plan = plan_check(
            self._rules,
            self._tiers,
            action,
            user_id=user_id,
            ip=ip,
            phone=phone,
            tier=tier,
            cost=cost,
            scope=scope,
            default_country_code=self._country_code,
            user_rule=self._user_rule,
        )
        blocked = self._blocked(plan, cost)
        if blocked is not None:
            self._count(plan.action, "blocked")
            return blocked
        results = self._cache.hit_rate_limits(plan.limit_args(), cost=cost)
        per_dimension = {
            dim.name: result for dim, result in zip(plan.dimensions, results, strict=True)
        }
        if all(results):
            self._count(plan.action, "allowed")
            return DomainLimitResult(True, plan.action, None, 0.0, dimensions=per_dimension)
        self._count(plan.action, "denied")
        denying = [(dim, r) for dim, r in zip(plan.dimensions, results, strict=True) if not r]
        worst, worst_result = max(denying, key=lambda pair: pair[1].retry_after)
        block_left = 0.0
        if cost > 0:  # a peek (cost 0) asks; only an attempt counts as a violation
            block_left = self._violated(plan, denying)
        return DomainLimitResult(
            False,
            plan.action,
            worst.name,
            max(worst_result.retry_after, block_left),
            dimensions=per_dimension,
        )

    def check_otp(self, phone: str, ip: str, *, tier: str | None = None) -> DomainLimitResult:
        """One OTP send to `phone` requested from `ip`: the "otp" rule (per phone and per IP)."""
        return self.check("otp", phone=phone, ip=ip, tier=tier)

    def check_upload(
        self,
        user_id: str | int,
        *,
        ip: str | None = None,
        tier: str | None = None,
        cost: int = 1,
    ) -> DomainLimitResult:
        """`cost` uploads by `user_id`: the "upload" rule (per day and per week, tier-scaled)."""
        return self.check("upload", user_id=user_id, ip=ip, tier=tier, cost=cost)

    def check_endpoint(
        self,
        endpoint: str,
        *,
        user_id: str | int | None = None,
        ip: str | None = None,
        tier: str | None = None,
    ) -> DomainLimitResult:
        """One call of `endpoint` (e.g. "POST /orders"): the "endpoint" rule, per user and per
        IP, each endpoint with its own quota."""
        return self.check("endpoint", user_id=user_id, ip=ip, tier=tier, scope=endpoint)

    def stats(self) -> dict[str, int]:
        """Counters of this limiter (no I/O): `<action>_<allowed|denied|blocked>` decisions and
        `<action>_escalations`, plus the totals `allowed`, `denied`, `blocked`, `escalations`."""
        with self._counts_lock:
            decisions = dict(self._decisions)
            escalations = dict(self._escalations)
        out: dict[str, int] = dict.fromkeys(("allowed", "denied", "blocked", "escalations"), 0)
        for (action, outcome), count in decisions.items():
            out[f"{action}_{outcome}"] = count
            out[outcome] += count
        for (action, _dimension), count in escalations.items():
            out[f"{action}_escalations"] = out.get(f"{action}_escalations", 0) + count
            out["escalations"] += count
        return out

    def decision_counts(self) -> dict[tuple[str, str], int]:
        """(action, outcome) -> count, outcome "allowed", "denied" or "blocked" (for metrics)."""
        with self._counts_lock:
            return dict(self._decisions)

    def escalation_counts(self) -> dict[tuple[str, str], int]:
        """(action, subject) -> blocks started by this process (for metrics)."""
        with self._counts_lock:
            return dict(self._escalations)

    # --- escalation ------------------------------------------------------------------------

    def _count(self, action: str, outcome: str) -> None:
        with self._counts_lock:
            self._decisions[action, outcome] = self._decisions.get((action, outcome), 0) + 1

    def _blocked(self, plan: Plan, cost: int) -> DomainLimitResult | None:
        """The denial of a block in force on one of the request's subjects, else None.

        The block key is trusted for its presence only: whatever it holds blocks for at most
        `Escalation.block_seconds` (its TTL is cut to that), and the result names a dimension of the
        plan, never stored text.
        """
        if not self._escalation.violations:
            return None
        block_seconds = self._escalation.block_seconds
        for subject, value in plan.subjects:
            key = block_key(plan.action, plan.scope, subject, value)
            try:
                block = self._cache.get(key)
            except (SerializationError, WrongTypeError):
                block = {}  # not written by a limiter: still a block, of a configured dimension
            if block is None:
                continue
            left = self._cache.ttl(key)
            if left == -2:
                continue  # expired since the read
            if left == -1 or left > math.ceil(block_seconds):
                self._cache.expire(key, block_seconds)
                left = math.ceil(block_seconds)
            names = [d.name for d in plan.dimensions if d.subject == subject]
            stored = block.get("dimension") if isinstance(block, dict) else None
            dimension = stored if stored in names else names[0]
            if _logger.isEnabledFor(logging.DEBUG):
                _logger.debug("rate limit block holds: %s %s", plan.action, subject)
            retry_after = max(float(max(left, 1)), self._admitted_after(plan, cost))
            return DomainLimitResult(False, plan.action, dimension, retry_after, blocked=True)
        return None

    def _admitted_after(self, plan: Plan, cost: int) -> float:
        """Seconds until every dimension of `plan` has room for `cost`, recording nothing.

        A peek at the limit lowered by `need - 1` (`need = max(cost, 1)`) has room exactly when the
        real limit has room for `need`, so its `retry_after` is the request's own.
        """
        need = max(cost, 1)
        never = 0.0
        peeks: list[tuple[str, int, float]] = []
        for key, limit, window in plan.limit_args():
            if need > limit:
                never = max(never, float(window))
            else:
                peeks.append((key, limit - need + 1, window))
        if not peeks:
            return never
        results = self._cache.hit_rate_limits(peeks, cost=0)
        return max(never, *(result.retry_after for result in results))

    def _violated(
        self, plan: Plan, denying: Sequence[tuple[Dimension, RateLimitResult]]
    ) -> float:
        """Count a violation of each denying subject; escalate the one that reached the limit.

        Returns:
            Seconds left of the longest block that holds on a denying subject (0.0 if none).
        """
        escalation = self._escalation
        if not escalation.violations:
            return 0.0
        block_left = 0.0
        seen: set[str] = set()
        for dim, _result in denying:
            if dim.subject in seen:
                continue
            seen.add(dim.subject)
            value = dict(plan.subjects)[dim.subject]
            counted = self._cache.hit_rate_limit(
                violation_key(plan.action, plan.scope, dim.subject, value),
                escalation.violations,
                escalation.window_seconds,
            )
            shown = _shown(dim.subject, value)
            block = block_key(plan.action, plan.scope, dim.subject, value)
            if not counted.allowed:
                # The log was full already: the call that filled it started the block.
                block_left = max(block_left, float(max(self._cache.ttl(block), 0)))
                continue
            if counted.remaining > 0:
                if counted.remaining < escalation.violations - 1:
                    _logger.warning(
                        "repeated rate limit violation: %s %s=%s (%d of %d before a block)",
                        plan.action,
                        dim.subject,
                        shown,
                        escalation.violations - counted.remaining,
                        escalation.violations,
                    )
                continue
            self._cache.set(
                block,
                {"dimension": dim.name, "violations": escalation.violations},
                ttl=escalation.block_seconds,
            )
            block_left = max(block_left, float(escalation.block_seconds))
            with self._counts_lock:
                key = (plan.action, dim.subject)
                self._escalations[key] = self._escalations.get(key, 0) + 1
            _logger.warning(
                "rate limit escalation: %s %s=%s blocked for %g s after %d violations in %g s",
                plan.action,
                dim.subject,
                shown,
                escalation.block_seconds,
                escalation.violations,
                escalation.window_seconds,
            )
        return block_left

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} actions={sorted(self._rules)}>"


def _shown(subject: str, value: str) -> str:
    """A subject value for a log line: phone numbers masked (they are personal data)."""
    if subject != "phone":
        return value
    return value[:3] + "*" * max(len(value) - 5, 0) + value[-2:]
