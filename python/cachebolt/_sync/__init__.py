# generated from _async by scripts/unasync.py; do not edit
"""Service package `_sync`: CacheService and its backend interface."""

from .backend import Backend
from .service import CacheService

__all__ = ["Backend", "CacheService"]
