"""Batch loops: one call per item of a batch, the callee looked up once.

Every timed leg of `cachebolt bench` and of benches/ is one of these loops (or a closure of the
same shape where a call needs more than one fixed argument), so a leg pays for its own call and
the loop, never for a wrapper in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Batch = list[Any]
RunBatch = Callable[[Batch], None]


def each(fn: Callable[[Any], object]) -> RunBatch:
    """`for a in batch: fn(a)`."""

    def run(batch: Batch) -> None:
        for a in batch:
            fn(a)

    return run


def each_with(fn: Callable[[Any, Any], object], extra: Any) -> RunBatch:
    """`for a in batch: fn(a, extra)`."""

    def run(batch: Batch) -> None:
        for a in batch:
            fn(a, extra)

    return run


def pairs(fn: Callable[[Any, Any], object]) -> RunBatch:
    """`for a, b in batch: fn(a, b)`."""

    def run(batch: Batch) -> None:
        for a, b in batch:
            fn(a, b)

    return run


def pairs_with(fn: Callable[[Any, Any, Any], object], extra: Any) -> RunBatch:
    """`for a, b in batch: fn(a, b, extra)`."""

    def run(batch: Batch) -> None:
        for a, b in batch:
            fn(a, b, extra)

    return run
