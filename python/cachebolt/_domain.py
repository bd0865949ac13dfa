"""No-I/O half of `EnhancedRateLimitService`: the rule table, tiers, input normalisation, keys.

Limits are data. A rule table maps an action ("otp", "upload", "endpoint", ...) to its
dimensions; each dimension limits one subject of the request (the phone, the client IP or the
user) to `limit` units per `window_seconds`. A request is checked against every dimension whose
subject it names, all together (see `AsyncCacheService.hit_rate_limits`).

The NestJS guide names the dimensions (OTP per phone and per IP, uploads per day and per week,
per-user and per-IP endpoint limits) and the tiers, but gives no numbers: the defaults below are
ours. Tiers multiply the limits of the dimensions marked `tiered` (the per-user quotas a plan
buys); phone and IP limits guard against abuse and do not scale.

Keys (under the backend's `ratelimit:` namespace): `{<action>}:<dimension>:<subject>`, with the
scope appended for per-endpoint limits: `{endpoint:POST /orders}:user:42`. The braces are a Redis
Cluster hash tag: every key of one check lives in one slot, so one script checks them all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._results import RateLimitResult
from ._validate import check_cost, check_limit, check_ttl

__all__ = [
    "DEFAULT_ESCALATION",
    "DEFAULT_RULES",
    "DEFAULT_TIERS",
    "SUBJECTS",
    "Dimension",
    "DomainLimitResult",
    "Escalation",
    "Plan",
    "block_key",
    "normalize_ip",
    "normalize_phone",
    "plan_check",
    "violation_key",
]

DAY: Final = 86_400
WEEK: Final = 7 * DAY
# The arguments of `check()` a dimension can limit.
SUBJECTS: Final = ("phone", "ip", "user")


@dataclass(frozen=True, slots=True)
class Dimension:
    """One limit of an action: `limit` units per `window_seconds` for each value of `subject`.

    Attributes:
        name: the dimension's name in results and keys ("phone", "user_day", ...).
        subject: which argument of `check()` it limits: "phone", "ip" or "user".
        limit: units per window for the base tier (>= 1).
        window_seconds: the sliding window (> 0).
        tiered: whether tiers multiply `limit` (per-user quotas: yes; abuse guards: no).
    """

    name: str
    subject: str
    limit: int
    window_seconds: float
    tiered: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"dimension name must be letters, digits, _ . -; got {self.name!r}")
        if self.subject not in SUBJECTS:
            raise ValueError(
                f"dimension {self.name!r}: subject must be one of {SUBJECTS}, got {self.subject!r}"
            )
        check_limit(self.limit)
        check_ttl(self.window_seconds, "window_seconds")


@dataclass(frozen=True, slots=True)
class Escalation:
    """Repeated violations escalate to a temporary block of the offending subject.

    `violations` denials of one subject (a phone, an IP, a user) for one action within
    `window_seconds` block that subject for that action for `block_seconds`. The block is a
    cache key, so it holds across processes in Redis mode. `violations=0` turns it off.
    """

    violations: int = 5
    window_seconds: float = 600
    block_seconds: float = 900

    def __post_init__(self) -> None:
        check_cost(self.violations)
        check_ttl(self.window_seconds, "window_seconds")
        check_ttl(self.block_seconds, "block_seconds")


DEFAULT_RULES: Final[Mapping[str, tuple[Dimension, ...]]] = {
    "otp": (
        Dimension("phone", "phone", 5, 3600, tiered=False),
        Dimension("ip", "ip", 20, 3600, tiered=False),
    ),
    "upload": (
        Dimension("user_day", "user", 10, DAY),
        Dimension("user_week", "user", 50, WEEK),
    ),
    "endpoint": (
        Dimension("user", "user", 100, 60),
        Dimension("ip", "ip", 300, 60, tiered=False),
    ),
}
DEFAULT_TIERS: Final[Mapping[str, float]] = {
    "bronze": 1,
    "silver": 2,
    "gold": 5,
    "diamond": 10,
}
DEFAULT_ESCALATION: Final = Escalation()

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_ACTION = re.compile(r"[A-Za-z0-9_.:-]+")


def normalize_phone(phone: object) -> str:
    """A phone number as a key: separators (spaces, dashes, dots, parens) removed, a leading `+`
    kept, 6 to 15 digits (E.164 allows 15).

    Raises:
        TypeError: not a `str`.
        ValueError: anything else than digits after the separators are removed.
    """
    if not isinstance(phone, str):
        raise TypeError(f"phone must be a str, not {type(phone).__name__}")
    compact = _PHONE_SEPARATORS.sub("", phone)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if not (digits.isascii() and digits.isdigit() and 6 <= len(digits) <= 15):
        raise ValueError(f"phone is not a phone number: {phone!r}")
    return ("+" if plus else "") + digits


def normalize_ip(ip: object) -> str:
    """A client address as a key: IPv4 as is, an IPv4-mapped IPv6 address as its IPv4, any other
    IPv6 address as its /64 network (one subscriber's LAN: a client rotating the low 64 bits
    stays one client).

    Raises:
        TypeError: not a `str`.
        ValueError: not an IP address.
    """
    if not isinstance(ip, str):
        raise TypeError(f"ip must be a str, not {type(ip).__name__}")
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ValueError(f"ip is not an IP address: {ip!r}") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _user(user_id: object) -> str:
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(f"user_id must be a str or int, not {type(user_id).__name__}")
    text = str(user_id)
    if not text:
        raise ValueError("user_id must be non-empty")
    return text


def _tag(action: str, scope: str | None) -> str:
    return "{" + (action if scope is None else f"{action}:{scope}") + "}"


def block_key(action: str, scope: str | None, subject: str, value: str) -> str:
    """The cache key of a temporary block of one subject value for one action."""
    return f"domain-block:{_tag(action, scope)}:{subject}:{value}"


def violation_key(action: str, scope: str | None, subject: str, value: str) -> str:
    """The rate-limit key counting one subject value's violations for one action."""
    return f"{_tag(action, scope)}:violations:{subject}:{value}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one `check()` will do: its dimensions, their keys and tier-scaled limits."""

    action: str
    scope: str | None
    dimensions: tuple[Dimension, ...]
    keys: tuple[str, ...]
    limits: tuple[int, ...]
    subjects: tuple[tuple[str, str], ...]  # distinct (subject, normalised value)

    def limit_args(self) -> list[tuple[str, int, float]]:
        """The (key, limit, window_seconds) triples of `hit_rate_limits`."""
        return [
            (key, limit, dim.window_seconds)
            for key, limit, dim in zip(self.keys, self.limits, self.dimensions, strict=True)
        ]


def check_rules(rules: Mapping[str, Sequence[Dimension]]) -> dict[str, tuple[Dimension, ...]]:
    """A rule table, checked: action names usable in keys, dimensions typed and distinct."""
    if not isinstance(rules, Mapping):
        raise TypeError(f"rules must be a mapping, not {type(rules).__name__}")
    table: dict[str, tuple[Dimension, ...]] = {}
    for action, dimensions in rules.items():
        if not isinstance(action, str) or not _ACTION.fullmatch(action):
            raise ValueError(f"action names must be letters, digits, _ . : -; got {action!r}")
        dims = tuple(dimensions)
        if not dims or not all(isinstance(d, Dimension) for d in dims):
            raise TypeError(f"rules[{action!r}] must be a non-empty sequence of Dimension")
        if len({d.name for d in dims}) != len(dims):
            raise ValueError(f"rules[{action!r}] has two dimensions with one name")
        table[action] = dims
    return table


def check_tiers(tiers: Mapping[str, float]) -> dict[str, float]:
    """A tier table (case-insensitive names -> multiplier > 0)."""
    if not isinstance(tiers, Mapping):
        raise TypeError(f"tiers must be a mapping, not {type(tiers).__name__}")
    table: dict[str, float] = {}
    for name, factor in tiers.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"tier names must be non-empty str, got {name!r}")
        check_ttl(factor, f"tiers[{name!r}]")
        table[name.lower()] = float(factor)
    return table


def plan_check(
    rules: Mapping[str, tuple[Dimension, ...]],
    tiers: Mapping[str, float],
    action: object,
    *,
    user_id: object,
    ip: object,
    phone: object,
    tier: object,
    cost: object,
    scope: object,
) -> Plan:
    """Validate and normalise one `check()` call into its `Plan` (nothing is read or written).

    Raises:
        TypeError, ValueError: a bad argument (an unknown action or tier, a phone or IP that
            is not one, no subject for any dimension), named in the message.
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be a str, not {type(action).__name__}")
    dimensions = rules.get(action)
    if dimensions is None:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(rules))}")
    check_cost(cost)
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ValueError(f"scope must be a non-empty str or None, got {scope!r}")
    factor = 1.0
    if tier is not None:
        if not isinstance(tier, str) or tier.lower() not in tiers:
            raise ValueError(f"unknown tier {tier!r}; known: {', '.join(tiers)}")
        factor = tiers[tier.lower()]
    values = {
        "phone": None if phone is None else normalize_phone(phone),
        "ip": None if ip is None else normalize_ip(ip),
        "user": None if user_id is None else _user(user_id),
    }
    used = tuple(d for d in dimensions if values[d.subject] is not None)
    if not used:
        needed = sorted({"user_id" if d.subject == "user" else d.subject for d in dimensions})
        raise ValueError(f"check({action!r}) needs at least one of: {', '.join(needed)}")
    tag = _tag(action, scope)
    keys = tuple(f"{tag}:{d.name}:{values[d.subject]}" for d in used)
    limits = tuple(max(1, int(d.limit * factor)) if d.tiered else d.limit for d in used)
    subjects = tuple(dict.fromkeys((d.subject, str(values[d.subject])) for d in used))
    return Plan(action, scope, used, keys, limits, subjects)


@dataclass(frozen=True, slots=True)
class DomainLimitResult:
    """The outcome of one domain check; truthy when the request is allowed.

    Attributes:
        allowed: True when every dimension admitted the request (and each recorded it).
        action: the action checked.
        dimension: the dimension that blocked ("phone", "ip", "user_day", ...), the one with
            the longest wait when several did; None when allowed.
        retry_after: seconds until the same request could be admitted (0.0 when allowed).
        blocked: True when a temporary block (an escalation of repeated violations) denied it.
        dimensions: each checked dimension's own result (empty when a block denied the
            request before any was checked). A denied request consumed none of them.
    """

    allowed: bool
    action: str
    dimension: str | None
    retry_after: float
    blocked: bool = False
    dimensions: Mapping[str, RateLimitResult] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.allowed
