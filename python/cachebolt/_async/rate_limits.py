"""`AsyncEnhancedRateLimitService`: domain-aware rate limits (OTP, uploads, endpoints) with tiers.

A check names an action and the request's subjects (phone, client IP, user); every dimension of
the action's rule whose subject is given is checked together, in one atomic step of the cache
(`hit_rate_limits`: one shard-locked step in memory, one Lua script in Redis), so a request that
one dimension denies consumes no other dimension's quota, under concurrency and across
processes. Limits, windows and tiers are data (`cachebolt._domain`).

Redis Cluster: a script's keys must share one slot, so every key of one check is put under one
hash tag, the action (plus the scope for per-endpoint limits): `{otp}:phone:+15550100`,
`{otp}:ip:203.0.113.7`, `{endpoint:POST /orders}:user:42`. The trade-off: all the limiter state
of one action (or one endpoint) lives on one primary, which bounds that action's check rate by
one node's and concentrates its keys there. OTP and upload checks are low-rate, and endpoints
spread over slots by scope, so we take that over the alternative, per-slot groups with a
reserve-then-rollback protocol (more round trips, and a crash between reserve and rollback
over-denies until the reservations expire).

Repeated violations escalate: each denied check counts a violation of the denying subject (a
sliding log at `{action}:violations:<subject>:<value>`); the call whose violation fills that log
(the `Escalation.violations`-th within its window) stores a block
(`domain-block:{action}:<subject>:<value>`, a cache key with the block's TTL, so every process
sees it), counts one escalation and logs one WARNING. The log admits exactly one call per fill,
atomically (one script in Redis), so concurrent violations start one block and never re-extend
it; violations the full log refuses change nothing. Repeated violations before the block are
logged at WARNING too. While a block holds, checks of that subject are denied at once
(`blocked=True`) and consume nothing. Blocks and violations are process-local while Redis is
down (the fallback).

`retry_after` of a denial is when the same request would be admitted: the longest of the block's
remaining time and every dimension's own wait for the request's cost (read during a block by a
peek that records nothing), so a client that obeys it is not refused again.

This module is the source of truth: `_sync/rate_limits.py` is generated from it.
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
from .service import AsyncCacheService

__all__ = ["AsyncEnhancedRateLimitService"]

_logger = get_logger()


class AsyncEnhancedRateLimitService:
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
        default_country_code: the calling code of phone numbers given without one ("1",
            "44"); None refuses them (see `normalize_phone`).
        canonical_user_id: the rule that maps a user id to its key (str or int -> non-empty
            str); None for `cachebolt.rate_limits.canonical_user_id` (NFKC, case-folded,
            stripped, invisible characters refused).

    Raises:
        TypeError, ValueError: a bad rule table, tier table, escalation or country code.
    """

    def __init__(
        self,
        cache: AsyncCacheService,
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

    async def check(
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

        Dimensions whose subject is not given are skipped (an anonymous request has no user
        dimension); at least one must apply.

        Args:
            action: a key of the rule table ("otp", "upload", "endpoint", ...).
            user_id: the authenticated user, for "user" dimensions (canonicalised by the
                `canonical_user_id` rule).
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
        blocked = await self._blocked(plan, cost)
        if blocked is not None:
            self._count(plan.action, "blocked")
            return blocked
        results = await self._cache.hit_rate_limits(plan.limit_args(), cost=cost)
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
            block_left = await self._violated(plan, denying)
        return DomainLimitResult(
            False,
            plan.action,
            worst.name,
            max(worst_result.retry_after, block_left),
            dimensions=per_dimension,
        )

    async def check_otp(self, phone: str, ip: str, *, tier: str | None = None) -> DomainLimitResult:
        """One OTP send to `phone` requested from `ip`: the "otp" rule (per phone and per IP)."""
        return await self.check("otp", phone=phone, ip=ip, tier=tier)

    async def check_upload(
        self,
        user_id: str | int,
        *,
        ip: str | None = None,
        tier: str | None = None,
        cost: int = 1,
    ) -> DomainLimitResult:
        """`cost` uploads by `user_id`: the "upload" rule (per day and per week, tier-scaled)."""
        return await self.check("upload", user_id=user_id, ip=ip, tier=tier, cost=cost)

    async def check_endpoint(
        self,
        endpoint: str,
        *,
        user_id: str | int | None = None,
        ip: str | None = None,
        tier: str | None = None,
    ) -> DomainLimitResult:
        """One call of `endpoint` (e.g. "POST /orders"): the "endpoint" rule, per user and per
        IP, each endpoint with its own quota."""
        return await self.check("endpoint", user_id=user_id, ip=ip, tier=tier, scope=endpoint)

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

    async def _blocked(self, plan: Plan, cost: int) -> DomainLimitResult | None:
        """The denial of a block in force on one of the request's subjects, else None.

        Its `retry_after` is the later of the block's end and the time every dimension has
        room for `cost` (`_admitted_after`). The block key is trusted for its presence only:
        whatever sits there (another type, bytes that are not JSON, a value without TTL or with
        a longer one) blocks for at most `Escalation.block_seconds` (the TTL is cut to it here),
        and the result names one of the plan's own dimensions, never stored text.
        """
        if not self._escalation.violations:
            return None
        block_seconds = self._escalation.block_seconds
        for subject, value in plan.subjects:
            key = block_key(plan.action, plan.scope, subject, value)
            try:
                block = await self._cache.get(key)
            except (SerializationError, WrongTypeError):
                block = {}  # not written by a limiter: still a block, of a configured dimension
            if block is None:
                continue
            left = await self._cache.ttl(key)
            if left == -2:
                continue  # expired since the read
            if left == -1 or left > math.ceil(block_seconds):
                await self._cache.expire(key, block_seconds)
                left = math.ceil(block_seconds)
            names = [d.name for d in plan.dimensions if d.subject == subject]
            stored = block.get("dimension") if isinstance(block, dict) else None
            dimension = stored if stored in names else names[0]
            if _logger.isEnabledFor(logging.DEBUG):
                _logger.debug("rate limit block holds: %s %s", plan.action, subject)
            retry_after = max(float(max(left, 1)), await self._admitted_after(plan, cost))
            return DomainLimitResult(False, plan.action, dimension, retry_after, blocked=True)
        return None

    async def _admitted_after(self, plan: Plan, cost: int) -> float:
        """Seconds until every dimension of `plan` has room for `cost`, recording nothing.

        A peek (cost 0, one unit) at a limit lowered by `need - 1` has room exactly when the
        real limit has room for `need = max(cost, 1)` units, and the sliding log frees them at
        the same time, so its `retry_after` is the request's own. A cost above a limit is never
        admitted: one window, as `hit_rate_limit` answers.
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
        results = await self._cache.hit_rate_limits(peeks, cost=0)
        return max(never, *(result.retry_after for result in results))

    async def _violated(
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
            counted = await self._cache.hit_rate_limit(
                violation_key(plan.action, plan.scope, dim.subject, value),
                escalation.violations,
                escalation.window_seconds,
            )
            shown = _shown(dim.subject, value)
            block = block_key(plan.action, plan.scope, dim.subject, value)
            if not counted.allowed:
                # The log was full already: the call that filled it started the block.
                block_left = max(block_left, float(max(await self._cache.ttl(block), 0)))
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
            await self._cache.set(
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
