"""Bounded exponential backoff between connection attempts (the one used by every transport)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """When the next connection attempt may be made.

    After each failure the wait grows from `initial` by `factor` up to `maximum` (each wait is
    spread by +-`jitter` so that many clients do not reconnect in step); a success resets it.
    It never blocks: callers ask `ready()` and skip the attempt when it says no.
    """

    def __init__(
        self,
        initial: float = 0.1,
        maximum: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial < 0 or maximum < initial or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs 0 <= initial <= maximum, factor >= 1, 0 <= jitter < 1")
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._clock = clock
        self._rand = rand
        self._next_delay = initial
        self._not_before = 0.0
        self.failures = 0

    def ready(self) -> bool:
        """True when an attempt may be made now."""
        return self.failures == 0 or self._clock() >= self._not_before

    def remaining(self) -> float:
        """Seconds until the next attempt may be made (0 when ready)."""
        if self.failures == 0:
            return 0.0
        return max(0.0, self._not_before - self._clock())

    def failure(self) -> float:
        """Record a failed attempt; returns the wait before the next one."""
        delay = self._next_delay * (1.0 + self.jitter * (2.0 * self._rand() - 1.0))
        delay = min(delay, self.maximum)
        self._not_before = self._clock() + delay
        self._next_delay = min(self.maximum, max(self._next_delay, 1e-3) * self.factor)
        self.failures += 1
        return delay

    def success(self) -> None:
        """Record a successful attempt: the next failure starts again from `initial`."""
        self.failures = 0
        self._next_delay = self.initial
        self._not_before = 0.0

    def reset(self) -> None:
        """Forget all failures (e.g. in a forked child)."""
        self.success()
