"""RateLoop: a fixed-rate loop on absolute deadlines of a monotonic clock.

Deadlines are ``t0 + k * period``: errors never accumulate. A cycle that overruns skips the
periods it missed (counted) instead of bursting to catch up, so the robot never sees a flurry of
late commands. Sleeping stops ``spin_s`` short of the deadline and busy-waits the rest, which
takes the scheduler's wake-up jitter out of the period error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LoopStats:
    period_errors_s: list[float] = field(default_factory=list)
    work_times_s: list[float] = field(default_factory=list)
    missed_deadlines: int = 0
    overruns: int = 0

    @property
    def cycles(self) -> int:
        return len(self.work_times_s)

    def summary(self) -> dict[str, float]:
        """Figures in milliseconds; period error is how late each wake-up was."""
        errors = np.abs(np.asarray(self.period_errors_s)) * 1e3
        work = np.asarray(self.work_times_s) * 1e3
        return {
            "cycles": self.cycles,
            "period_error_p50_ms": _percentile(errors, 50),
            "period_error_p99_ms": _percentile(errors, 99),
            "period_error_max_ms": float(errors.max()) if errors.size else 0.0,
            "work_time_p50_ms": _percentile(work, 50),
            "work_time_p99_ms": _percentile(work, 99),
            "work_time_max_ms": float(work.max()) if work.size else 0.0,
            "missed_deadlines": self.missed_deadlines,
            "overruns": self.overruns,
        }


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


class RateLoop:
    """Call ``wait()`` once per cycle after the cycle's work; it returns when the next period starts.

    ``realtime=False`` runs as fast as possible (simulation), still keeping the work-time statistics.
    """

    def __init__(
        self,
        period_s: float,
        *,
        realtime: bool = True,
        spin_s: float = 0.0005,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.period_s = period_s
        self.realtime = realtime
        self.spin_s = spin_s
        self.clock = clock
        self.sleep = sleep
        self.stats = LoopStats()
        self._deadline: float | None = None
        self._cycle_start: float | None = None

    def start(self) -> None:
        """Begin a run: the first deadline is one period from now."""
        now = self.clock()
        self._cycle_start = now
        self._deadline = now + self.period_s

    def wait(self) -> float:
        """Finish the current cycle and wait for the next deadline; returns the wake-up time."""
        if self._deadline is None:
            self.start()
        now = self.clock()
        self.stats.work_times_s.append(now - self._cycle_start)
        if not self.realtime:
            self._cycle_start = now
            return now
        if now > self._deadline:
            missed = math.ceil((now - self._deadline) / self.period_s)
            self.stats.overruns += 1
            self.stats.missed_deadlines += missed
            self._deadline += missed * self.period_s
        remaining = self._deadline - self.clock()
        if remaining > self.spin_s:
            self.sleep(remaining - self.spin_s)
        while (woke := self.clock()) < self._deadline:
            pass
        self.stats.period_errors_s.append(woke - self._deadline)
        self._deadline += self.period_s
        self._cycle_start = woke
        return woke
