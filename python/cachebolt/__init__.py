"""cachebolt: a TTL cache, token-safe locks, exact rate limits, pub/sub, sets, hashes and counters.

`CacheService` (blocking) and `AsyncCacheService` (asyncio) have the same methods; the in-memory
Rust backend serves them with zero configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy
from ._core import __version__
from ._pubsub import Subscription
from ._results import CacheStats, FencedLock, RateLimitResult
from ._sync import CacheService
from ._templates import escape_key_part
from .config import CacheConfig
from .exceptions import (
    BackendUnavailable,
    CacheError,
    CapacityError,
    ConfigError,
    LockLost,
    LockNotAcquired,
    RateLimitExceeded,
    SerializationError,
    WrongTypeError,
)
from .patterns import escape_pattern

# Imported on first access: the asyncio names would load asyncio and ssl into every blocking-only
# program, the domain rate limits their rule tables and ipaddress into every program that has no
# use for them.
_LAZY = {
    "AsyncCacheService": "._async",
    "AsyncEnhancedRateLimitService": ".rate_limits",
    "Dimension": ".rate_limits",
    "DomainLimitResult": ".rate_limits",
    "EnhancedRateLimitService": ".rate_limits",
    "Escalation": ".rate_limits",
}
if TYPE_CHECKING:
    from ._async import AsyncCacheService
    from .rate_limits import (
        AsyncEnhancedRateLimitService,
        Dimension,
        DomainLimitResult,
        EnhancedRateLimitService,
        Escalation,
    )
else:

    def __getattr__(name: str) -> Any:
        return _lazy.load(globals(), _LAZY, name)


__all__ = [
    "AsyncCacheService",
    "AsyncEnhancedRateLimitService",
    "BackendUnavailable",
    "CacheConfig",
    "CacheError",
    "CacheService",
    "CacheStats",
    "CapacityError",
    "ConfigError",
    "Dimension",
    "DomainLimitResult",
    "EnhancedRateLimitService",
    "Escalation",
    "FencedLock",
    "LockLost",
    "LockNotAcquired",
    "RateLimitExceeded",
    "RateLimitResult",
    "SerializationError",
    "Subscription",
    "WrongTypeError",
    "__version__",
    "escape_key_part",
    "escape_pattern",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
