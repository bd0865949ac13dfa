"""No-I/O half of `EnhancedRateLimitService`: the rule table, tiers, input normalisation, keys.

A rule maps an action to its dimensions, each limiting one subject (phone, IP or user). Keys are
`{<action>}:<dimension>:<subject>` (plus the scope for endpoints) under `ratelimit:`; the braces
are a Redis Cluster hash tag, so one script checks every key of a request.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ._results import RateLimitResult
from ._validate import count_arg, positive_arg, seconds_arg

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
    "canonical_user_id",
    "check_country_code",
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
        positive_arg(self.limit, "limit")
        seconds_arg(self.window_seconds, "window_seconds")


@dataclass(frozen=True, slots=True)
class Escalation:
    """Repeated violations escalate to a temporary block of the offending subject.

    `violations` denials of one subject for one action within `window_seconds` block it for
    `block_seconds`, across processes in Redis mode; `violations=0` turns it off.
    """

    violations: int = 5
    window_seconds: float = 600
    block_seconds: float = 900

    def __post_init__(self) -> None:
        count_arg(self.violations, "violations")
        seconds_arg(self.window_seconds, "window_seconds")
        seconds_arg(self.block_seconds, "block_seconds")


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
_DIGITS = re.compile(r"[0-9]+")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
_ACTION = re.compile(r"[A-Za-z0-9_.:-]+")
# E.164: at most 15 digits with the country code; the shortest numbers in use have 7.
_E164_DIGITS = range(7, 16)
# The national (trunk) prefix dialled before a national number: "0" in most countries, "1" in
# the North American plan (+1), "8" in Russia and Kazakhstan (+7).
_TRUNK_PREFIX = {"1": "1", "7": "8"}


def check_country_code(code: object) -> str | None:
    """A default country calling code: None, or 1 to 3 digits not starting with 0 ("44").

    Raises:
        TypeError, ValueError: anything else, named in the message.
    """
    if code is None:
        return None
    if not isinstance(code, str):
        raise TypeError(f"default_country_code must be a str or None, not {type(code).__name__}")
    if not _COUNTRY_CODE.fullmatch(code):
        raise ValueError(f"default_country_code must be 1 to 3 digits, not 0...; got {code!r}")
    return code


def normalize_phone(phone: object, default_country_code: str | None = None) -> str:
    """A phone number in E.164 form (`+` and 7 to 15 digits), one key for every spelling.

    The rules (separators, `00`, national trunk prefixes) are in docs/semantics.md.

    Args:
        phone: the number as typed.
        default_country_code: the calling code of national numbers ("1", "44"); None refuses
            them.

    Raises:
        TypeError: not a `str`.
        ValueError: not a phone number: other characters, a country code starting with 0, a
            national number without `default_country_code`, or not 7 to 15 digits in all.
    """
    if not isinstance(phone, str):
        raise TypeError(f"phone must be a str, not {type(phone).__name__}")
    check_country_code(default_country_code)
    compact = _PHONE_SEPARATORS.sub("", phone)
    if compact.startswith("+"):
        digits = compact[1:]
    elif compact.startswith("00"):
        digits = compact[2:]
    elif default_country_code is None:
        if _DIGITS.fullmatch(compact):
            raise ValueError(
                "phone has no country code: write it as +<country code><number> (or 00...), "
                "or set default_country_code"
            )
        digits = compact  # refused below, as not a phone number
    else:
        trunk = _TRUNK_PREFIX.get(default_country_code, "0")
        national = compact[len(trunk) :] if compact.startswith(trunk) else compact
        digits = default_country_code + national
    if not _DIGITS.fullmatch(digits) or len(digits) not in _E164_DIGITS:
        raise ValueError("phone is not a phone number: expected + and 7 to 15 digits")
    if digits.startswith("0"):
        raise ValueError("phone is not a phone number: no country code starts with 0")
    return "+" + digits


def normalize_ip(ip: object) -> str:
    """A client address as a key: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64.

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


# Unicode categories no user id needs and that make equal-looking ids differ: controls (Cc),
# format characters (Cf: zero-width space U+200B, U+FEFF, bidi controls U+202A-U+202E and
# U+2066-U+2069, soft hyphen), surrogates, private use, unassigned code points, line and
# paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Default-ignorable code points outside those categories: the combining grapheme joiner,
# Hangul fillers, Mongolian and other variation selectors.
_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)


def canonical_user_id(user_id: object) -> str:
    """A user id as a key: an int's decimal text, a str NFKC-casefolded and stripped.

    Raises:
        TypeError: not a `str` or `int` (a `bool` is refused).
        ValueError: empty after stripping, or holding an invisible, control or format character
            (named by code point).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(f"user_id must be a str or int, not {type(user_id).__name__}")
    if isinstance(user_id, int):
        return str(user_id)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", user_id).casefold())
    text = folded.strip()
    if not text:
        raise ValueError("user_id must be non-empty (after stripping whitespace)")
    for char in text:
        if unicodedata.category(char) in _REFUSED_CATEGORIES or _INVISIBLE.match(char):
            raise ValueError(
                f"user_id holds an invisible, control or format character: U+{ord(char):04X}"
            )
    return text


def _user(user_id: object, rule: Callable[[str | int], str]) -> str:
    """`rule(user_id)` for a str or int id, checked to be a non-empty str."""
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)):
        raise TypeError(f"user_id must be a str or int, not {type(user_id).__name__}")
    text = rule(user_id)
    if not isinstance(text, str) or not text:
        raise ValueError(f"canonical_user_id must return a non-empty str, got {text!r}")
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
        seconds_arg(factor, f"tiers[{name!r}]")
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
    default_country_code: str | None = None,
    user_rule: Callable[[str | int], str] = canonical_user_id,
) -> Plan:
    """Validate and normalise one `check()` call into its `Plan` (nothing is read or written).

    Raises:
        TypeError, ValueError: a bad argument (an unknown action or tier, a phone or IP that
            is not one, no subject for any dimension, a `user_rule` answer that is not a
            non-empty str), named in the message.
    """
    if not isinstance(action, str):
        raise TypeError(f"action must be a str, not {type(action).__name__}")
    dimensions = rules.get(action)
    if dimensions is None:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(rules))}")
    count_arg(cost, "cost")
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ValueError(f"scope must be a non-empty str or None, got {scope!r}")
    factor = 1.0
    if tier is not None:
        if not isinstance(tier, str) or tier.lower() not in tiers:
            raise ValueError(f"unknown tier {tier!r}; known: {', '.join(tiers)}")
        factor = tiers[tier.lower()]
    values = {
        "phone": None if phone is None else normalize_phone(phone, default_country_code),
        "ip": None if ip is None else normalize_ip(ip),
        "user": None if user_id is None else _user(user_id, user_rule),
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
        dimension: the denying dimension with the longest wait; None when allowed.
        retry_after: seconds until the same request could be admitted (0.0 when allowed).
        blocked: True when a temporary block (an escalation of repeated violations) denied it.
        dimensions: each checked dimension's result (empty when a block denied first).
    """

    allowed: bool
    action: str
    dimension: str | None
    retry_after: float
    blocked: bool = False
    dimensions: Mapping[str, RateLimitResult] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.allowed
