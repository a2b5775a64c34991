"""Timing on the wire: ping round trips (and how late they are) and the sync-read stress test, on
either protocol's bus (the defaults are Dynamixel's: ``BusProtocol.ping_bytes`` and ``state_block``
give another's)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearl_robot.bringup.protocols import DYNAMIXEL
from pearl_robot.servo_bus import CommError, wire_time_s

STATE_ADDRESS, STATE_LENGTH = 126, 10  # present current (or load), velocity, position on X-series
PING_BYTES = DYNAMIXEL.ping_bytes


def _ms(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1e3, q)), 3) if len(values) else 0.0


@dataclass(frozen=True)
class RoundTrip:
    """Ping round trips of one servo, in ms; ``lateness``: beyond wire time + its Return Delay Time."""

    expected_ms: float
    samples_s: tuple[float, ...]
    failures: int

    def to_dict(self) -> dict[str, float | int]:
        late = [s - self.expected_ms / 1e3 for s in self.samples_s]
        return {
            "p50": _ms(self.samples_s, 50),
            "p99": _ms(self.samples_s, 99),
            "max": _ms(self.samples_s, 100),
            "expected": round(self.expected_ms, 3),
            "lateness_p50": _ms(late, 50),
            "lateness_p99": _ms(late, 99),
            "failures": self.failures,
        }


def round_trip(
    bus: Any, servo_id: int, return_delay_us: float, pings: int, *, ping_bytes: int = PING_BYTES
) -> RoundTrip:
    """``pings`` pings of one servo, timed end to end (the bus should wait generously here)."""
    expected_ms = (wire_time_s(ping_bytes, bus.baudrate) + return_delay_us * 1e-6) * 1e3
    samples, failures = [], 0
    for _ in range(pings):
        start = time.perf_counter()
        try:
            bus.ping(servo_id)
        except CommError:
            failures += 1
            continue
        samples.append(time.perf_counter() - start)
    return RoundTrip(expected_ms, tuple(samples), failures)


@dataclass(frozen=True)
class StressResult:
    cycles: int
    ids: tuple[int, ...]
    timeouts_per_id: dict[int, int]  # cycles in which that id's status packet did not arrive intact in time
    stats: dict[str, int]  # bus counters during the test (crc_errors, late_replies, malformed, unexpected ...)
    cycle_s: tuple[float, ...]

    @property
    def timeouts(self) -> int:
        return sum(self.timeouts_per_id.values())

    @property
    def loss_rate(self) -> float:
        """Status packets lost or damaged, per packet asked for."""
        return self.timeouts / max(1, self.cycles * len(self.ids))

    def to_dict(self) -> dict[str, object]:
        return {
            "cycles": self.cycles,
            "ids": list(self.ids),
            "timeouts_per_id": {str(k): v for k, v in self.timeouts_per_id.items()},
            "crc_errors": self.stats.get("crc_errors", 0),
            "late_replies": self.stats.get("late_replies", 0),
            "malformed": self.stats.get("malformed", 0),
            "unexpected": self.stats.get("unexpected", 0),
            "cycle_ms_p50": _ms(self.cycle_s, 50),
            "cycle_ms_p99": _ms(self.cycle_s, 99),
            "cycle_ms_max": _ms(self.cycle_s, 100),
        }


def stress(
    bus: Any, ids: Sequence[int], cycles: int, *, block: tuple[int, int] = (STATE_ADDRESS, STATE_LENGTH)
) -> StressResult:
    """``cycles`` SYNC READs of the state ``block`` (address, length) of ``ids``, as the control loop does
    each period. Run it on a bus with ``retries=0``: every lost packet is counted, none hidden by a retry."""
    address, length = block
    before = bus.stats.copy()
    timeouts = dict.fromkeys(ids, 0)
    cycle_s = []
    for _ in range(cycles):
        start = time.perf_counter()
        try:
            bus.sync_read(address, length, list(ids))
        except CommError as exc:
            for servo_id in exc.missing_ids:
                timeouts[servo_id] += 1
        cycle_s.append(time.perf_counter() - start)
    stats = {k: bus.stats[k] - before[k] for k in bus.STAT_NAMES}
    return StressResult(cycles, tuple(ids), timeouts, stats, tuple(cycle_s))
