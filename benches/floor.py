"""The floor: the simplest pure-Python cache with the semantics of `CacheService` get/set.

A dict of key -> (orjson bytes, deadline or None), checked against `time.monotonic()` on read.
Values go through a JSON round trip exactly as in `CacheService` (tuples come back as lists),
a value that cannot be encoded raises and stores nothing, a TTL <= 0 raises `ValueError`.
If cachebolt's Rust-backed get/set is not within ~10% of this, the native core is not paying
for itself.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from orjson import JSONEncodeError, dumps, loads


class FloorCache:
    """Pure-Python TTL cache: one dict, lazy expiry on read, values stored as orjson bytes."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """Return the decoded value, or `default` when missing or expired."""
        entry = self._data.get(key)
        if entry is None:
            return default
        blob, deadline = entry
        if deadline is not None and deadline <= monotonic():
            del self._data[key]
            return default
        return loads(blob)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Encode and store `value`; `ttl` in seconds (None: no expiry)."""
        try:
            blob = dumps(value)
        except JSONEncodeError as exc:
            raise ValueError(f"cannot encode the value of {key!r}") from exc
        if ttl is None:
            self._data[key] = (blob, None)
        elif ttl > 0:
            self._data[key] = (blob, monotonic() + ttl)
        else:
            raise ValueError("ttl must be > 0")

    def get_or_set(self, key: str, ttl: float | None, fn: Any) -> Any:
        """The value at `key`; on a miss, store `fn()` for `ttl` seconds and return it."""
        entry = self._data.get(key)
        if entry is not None and (entry[1] is None or entry[1] > monotonic()):
            return loads(entry[0])
        blob = dumps(fn())
        self._data[key] = (blob, None if ttl is None else monotonic() + ttl)
        return loads(blob)

    def set_bytes(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        """Store raw bytes (the memory-per-key comparison stores bytes, as the Rust store does)."""
        self._data[key] = (blob, None if ttl is None else monotonic() + ttl)

    def delete(self, key: str) -> bool:
        """Remove a key; True when it was present."""
        return self._data.pop(key, None) is not None

    def __len__(self) -> int:
        return len(self._data)
