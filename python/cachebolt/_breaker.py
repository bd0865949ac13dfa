"""The circuit breaker in front of Redis: a state machine with no I/O, shared by both services.

docs/ARCHITECTURE.md ("The circuit breaker") describes the states and the probe backoff. Each
transition method returns True to the one caller that made the transition, which logs it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Final, Literal

from ._constants import PROBE_INITIAL_SECONDS, PROBE_MAX_SECONDS

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]
CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"


class CircuitBreaker:
    """Closed / open / half-open, thread-safe; every transition is reported to one caller only.

    Args:
        initial: seconds from opening to the first probe.
        maximum: cap of the doubling wait between probes.
        clock: monotonic seconds (`time.monotonic`).
        jitter: a source of floats in [0, 1) (`random.random`); the wait is scaled by 0.5..1.
    """

    __slots__ = (
        "_clock",
        "_failed_probes",
        "_initial",
        "_jitter",
        "_lock",
        "_maximum",
        "_opened_at",
        "outages",
        "state",
    )

    def __init__(
        self,
        *,
        initial: float = PROBE_INITIAL_SECONDS,
        maximum: float = PROBE_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"need 0 < initial <= maximum, got {initial} and {maximum}")
        self._lock = threading.Lock()
        self._initial = initial
        self._maximum = maximum
        self._clock = clock
        self._jitter = jitter
        self._failed_probes = 0
        self._opened_at: float | None = None
        self.state: BreakerState = CLOSED
        """The current state; read without a lock (one attribute read)."""
        self.outages = 0
        """How many times the breaker has opened."""

    @property
    def closed(self) -> bool:
        """True when Redis serves the calls."""
        return self.state == CLOSED

    def open_seconds(self) -> float:
        """Seconds since the breaker opened (0.0 when closed)."""
        opened_at = self._opened_at
        return 0.0 if opened_at is None else self._clock() - opened_at

    def trip(self) -> bool:
        """A call failed on Redis: open the breaker. True when this call opened it."""
        with self._lock:
            if self.state != CLOSED:
                return False
            self.state = OPEN
            self._failed_probes = 0
            self._opened_at = self._clock()
            self.outages += 1
            return True

    def next_probe_delay(self) -> float:
        """Seconds to wait before the next probe: the backoff step, jittered to 50..100 %."""
        with self._lock:
            step = min(self._initial * 2.0**self._failed_probes, self._maximum)
        return step * (0.5 + self._jitter() / 2)

    def probe_started(self) -> bool:
        """A probe begins: open -> half-open. False when the breaker is not open."""
        with self._lock:
            if self.state != OPEN:
                return False
            self.state = HALF_OPEN
            return True

    def probe_failed(self) -> None:
        """The probe got no answer: half-open -> open, and the next wait doubles (capped)."""
        with self._lock:
            if self.state == HALF_OPEN:
                self.state = OPEN
                self._failed_probes = min(self._failed_probes + 1, 64)

    def reset(self) -> bool:
        """Redis answered: close the breaker. True when this call closed it."""
        with self._lock:
            if self.state == CLOSED:
                return False
            self.state = CLOSED
            self._failed_probes = 0
            self._opened_at = None
            return True

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} outages={self.outages}>"
