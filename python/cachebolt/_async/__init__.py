"""Service package `_async`: AsyncCacheService and its backend interface."""

from .backend import AsyncBackend
from .service import AsyncCacheService

__all__ = ["AsyncBackend", "AsyncCacheService"]
