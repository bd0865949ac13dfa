"""Domain rate limits: `EnhancedRateLimitService` (blocking) and `AsyncEnhancedRateLimitService`.

```python
from cachebolt import CacheService
from cachebolt.rate_limits import EnhancedRateLimitService

limiter = EnhancedRateLimitService(CacheService(), default_country_code="1")
result = limiter.check_otp("(555) 010-0100", "203.0.113.7")   # the key holds +15550100100
if not result:
    print(result.dimension, result.retry_after)
```

README "Domain rate limits" and docs/semantics.md describe the rules, tiers and escalation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _lazy
from ._domain import (
    DEFAULT_ESCALATION,
    DEFAULT_RULES,
    DEFAULT_TIERS,
    Dimension,
    DomainLimitResult,
    Escalation,
    canonical_user_id,
    normalize_ip,
    normalize_phone,
)
from ._sync.rate_limits import EnhancedRateLimitService

# Imported on first access, like `cachebolt.AsyncCacheService`: a blocking-only program never
# loads asyncio.
_LAZY = {"AsyncEnhancedRateLimitService": "._async.rate_limits"}
if TYPE_CHECKING:
    from ._async.rate_limits import AsyncEnhancedRateLimitService
else:

    def __getattr__(name: str) -> Any:
        return _lazy.load(globals(), _LAZY, name)


__all__ = [
    "DEFAULT_ESCALATION",
    "DEFAULT_RULES",
    "DEFAULT_TIERS",
    "AsyncEnhancedRateLimitService",
    "Dimension",
    "DomainLimitResult",
    "EnhancedRateLimitService",
    "Escalation",
    "canonical_user_id",
    "normalize_ip",
    "normalize_phone",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
