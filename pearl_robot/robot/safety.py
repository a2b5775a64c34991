"""SafeRobot: the safety layer every backend gets by default.

Rules, applied identically on every backend:
- position limits from the hardware YAML (targets clamped, counted);
- a per-step change cap: no command moves the goal more than min(max_step_rad, max_velocity * period)
  from the last goal sent (counted). A joint found outside its limits at enable is reported
  (``outside_limits``, a logged warning) and brought into range at that rate, one capped step per command;
- NaN/inf, non-numeric (booleans, strings, None, objects) or wrong-shape commands are refused: the arm
  holds its last target, the event is counted;
- a watchdog that holds the present position (where it is, even outside the limits) when no command
  arrives for N control periods, and while holding re-sends that goal once per period (``keepalive``)
  so that a servo-side bus watchdog does not stop an arm that is merely idle;
- an e-stop that latches until cleared (the arm holds, every command is refused and counted);
- a fault in the robot's state (servo hardware error, a joint in error, lost communication) latches the e-stop.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pearl_robot.errors import RobotFault
from pearl_robot.robot.base import Lifecycle, Robot, RobotState, RobotWrapper, non_numbers
from pearl_robot.robot.spec import RobotSpec

log = logging.getLogger(__name__)

# Faults that stop the arm. A stale read is counted, and stops the arm once it persists.
STOPPING_FAULTS = frozenset(
    {"joint_error", "hardware_error", "comm_error", "overload", "overheating", "voltage", "bus_watchdog"}
)


@dataclass(frozen=True)
class OutsideLimits:
    """A joint found resting outside its position limits at enable."""

    joint: str
    position: float  # rad
    low: float
    high: float
    step_rad: float  # the most one command moves it toward the range

    @property
    def excess_rad(self) -> float:
        return self.position - self.high if self.position > self.high else self.low - self.position

    def __str__(self) -> str:
        return (
            f"{self.joint} rests at {self.position:.3f} rad, outside [{self.low:.3f}, {self.high:.3f}] "
            f"by {self.excess_rad:.3f} rad; it will be moved into range at {self.step_rad:.3g} rad per step"
        )


def outside_limits(spec: RobotSpec, position: np.ndarray, step_cap: np.ndarray) -> tuple[OutsideLimits, ...]:
    lo, hi = spec.position_min, spec.position_max
    return tuple(
        OutsideLimits(spec.joint_names[i], float(position[i]), float(lo[i]), float(hi[i]), float(step_cap[i]))
        for i in np.flatnonzero((position < lo) | (position > hi))
    )


class SafeRobot(RobotWrapper):
    def __init__(
        self,
        inner: Robot,
        *,
        watchdog: bool | None = None,
        watchdog_periods: int | None = None,
        max_step_rad: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``watchdog=None`` runs it when the backend's time passes on its own (hardware, the virtual bus,
        a remote robot); lock-step simulations stand still between commands, so they need none."""
        super().__init__(inner)
        self.clock = clock
        spec = inner.spec
        self.watchdog_periods = watchdog_periods or spec.safety.watchdog_periods
        self.max_step_rad = max_step_rad or spec.safety.max_step_rad
        self.step_cap = np.minimum(self.max_step_rad, spec.velocity_max * spec.period_s)
        self.watchdog_enabled = inner.realtime if watchdog is None else watchdog
        # a backend that counts its own events (RemoteRobot: server_lost, command_expired, ...) shares
        # its Counter, so whatever reads SafeRobot's events (the session table) sees them too
        backend = getattr(inner.unwrapped(), "events", None)
        shared = isinstance(backend, collections.Counter)
        self.events: collections.Counter[str] = backend if shared else collections.Counter()
        self.estop_reason: str | None = None
        self.outside_limits: tuple[OutsideLimits, ...] = ()  # joints outside their limits at the last enable
        self._last_sent: np.ndarray | None = None
        self._last_command_time = clock()
        self._last_send_time = clock()
        self._holding = False
        self._stale_streak = 0
        self._watchdog_thread: threading.Thread | None = None
        self._watchdog_stop = threading.Event()

    @property
    def estopped(self) -> bool:
        return self.estop_reason is not None

    def enable(self) -> None:
        with self._io_lock:
            if self.estopped:
                self.events["enable_refused_estop"] += 1
                raise RobotFault(f"e-stop latched ({self.estop_reason}); call clear_estop() after making the arm safe")
            self.inner.enable()
            self._last_sent = self.inner.read().position.copy()
            self._last_command_time = self.clock()
            self._holding = False
            self._report_outside_limits()
        if self.watchdog_enabled:
            self._start_watchdog()

    def _report_outside_limits(self) -> None:
        self.outside_limits = outside_limits(self.spec, self._last_sent, self.step_cap)
        for joint in self.outside_limits:
            self.events["outside_limits_at_enable"] += 1
            log.warning("%s", joint)

    def disable(self) -> None:
        self._stop_watchdog()
        with self._io_lock:
            self.inner.disable()
            self._last_sent = None

    def close(self) -> None:
        self._stop_watchdog()
        with self._io_lock:
            self.inner.close()

    # ---- e-stop ------------------------------------------------------------------------------
    def estop(self, reason: str = "operator e-stop") -> None:
        """Latch: hold the present position and refuse every command until ``clear_estop()``."""
        with self._io_lock:
            if self.estop_reason is None:
                self.events["estop"] += 1
                self.estop_reason = reason
            self._hold_present()

    def clear_estop(self) -> None:
        with self._io_lock:
            self.estop_reason = None
            self._stale_streak = 0
            if self.inner.lifecycle is Lifecycle.ACTIVE:
                self._last_sent = self.inner.read().position.copy()
            self._last_command_time = self.clock()

    # ---- I/O ---------------------------------------------------------------------------------
    def read(self) -> RobotState:
        with self._io_lock:
            state = self.inner.read()
            self._check_faults(state)
            return state

    def _check_faults(self, state: RobotState) -> None:
        kinds = {f.kind for f in state.faults}
        if "stale_read" in kinds:
            self.events["stale_read"] += 1
            self._stale_streak += 1
        else:
            self._stale_streak = 0
        stopping = kinds & STOPPING_FAULTS
        if stopping and not self.estopped:
            self.events["fault_stop"] += 1
            detail = "; ".join(str(f) for f in state.faults if f.kind in stopping)
            self.estop(f"fault: {detail}")
        elif self._stale_streak > self.watchdog_periods and not self.estopped:
            self.events["fault_stop"] += 1
            self.estop(f"fault: {self._stale_streak} stale reads in a row")

    def write(self, targets: np.ndarray) -> np.ndarray:
        with self._io_lock:
            if self.inner.lifecycle is not Lifecycle.ACTIVE:
                return self.inner.write(targets)  # raises the lifecycle error
            self._last_command_time = self.clock()
            self._holding = False
            if self.estopped:
                self.events["command_refused_estop"] += 1
                return self._send(self._last_sent)
            if non_numbers(targets):
                self.events["command_refused_type"] += 1
                return self._send(self._last_sent)
            arr = np.asarray(targets, dtype=float)
            if arr.shape != (self.spec.num_joints,):
                self.events["command_refused_shape"] += 1
                return self._send(self._last_sent)
            if not np.all(np.isfinite(arr)):
                self.events["command_refused_nonfinite"] += 1
                return self._send(self._last_sent)
            return self._send(self._limit(arr))

    def _limit(self, targets: np.ndarray) -> np.ndarray:
        """Clamp into the limits, then cap the step from the last goal sent: a goal outside the limits
        (a joint that rested there at enable) approaches the range by at most ``step_cap``."""
        spec = self.spec
        clamped = np.clip(targets, spec.position_min, spec.position_max)
        if np.any(clamped != targets):
            self.events["position_clamped"] += 1
        reference = self._last_sent
        if np.any((reference < spec.position_min) | (reference > spec.position_max)):
            self.events["moving_into_range"] += 1
        capped = np.clip(clamped, reference - self.step_cap, reference + self.step_cap)
        if np.any(capped != clamped):
            self.events["step_capped"] += 1
        return capped

    def _send(self, targets: np.ndarray) -> np.ndarray:
        sent = self.inner.write(targets)
        self._last_sent = np.asarray(sent, dtype=float).copy()
        self._last_send_time = self.clock()
        return sent

    def _hold_present(self) -> None:
        """Goal := present position, unclamped: a joint outside its limits is held where it is, not
        pulled into range in one jump."""
        if self.inner.lifecycle is not Lifecycle.ACTIVE:
            return
        self._send(self.inner.read().position.copy())

    # ---- watchdog ----------------------------------------------------------------------------
    def watchdog_check(self) -> bool:
        """Hold the present position if no command came for ``watchdog_periods``; True if it fired now.
        While holding, re-send the hold goal once per control period (see ``_keepalive``)."""
        with self._io_lock:
            if self.inner.lifecycle is not Lifecycle.ACTIVE:
                return False
            if self._holding:
                self._keepalive()
                return False
            if self.clock() - self._last_command_time < self.watchdog_periods * self.spec.period_s:
                return False
            self.events["watchdog_hold"] += 1
            self._holding = True
            self._hold_present()
            return True

    def _keepalive(self) -> None:
        """The same goal again, no motion: a servo-side bus watchdog stops the servos when no
        instruction arrives for a few periods, and an idle arm must not trip it."""
        if self.clock() - self._last_send_time >= self.spec.period_s:
            self.events["keepalive"] += 1
            self._send(self._last_sent)

    def _start_watchdog(self) -> None:
        self._stop_watchdog()
        self._watchdog_stop.clear()
        interval = self.spec.period_s / 4

        def run() -> None:
            while not self._watchdog_stop.wait(interval):
                try:
                    self.watchdog_check()
                except Exception:  # the robot faulted or closed under us: the backend made it safe
                    self.events["watchdog_error"] += 1
                    return

        self._watchdog_thread = threading.Thread(target=run, name="pearl-robot-watchdog", daemon=True)
        self._watchdog_thread.start()

    def _stop_watchdog(self) -> None:
        self._watchdog_stop.set()
        thread = self._watchdog_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        self._watchdog_thread = None

    # ---- pass-through capabilities -----------------------------------------------------------
    def teleport(self, position: np.ndarray) -> None:
        with self._io_lock:
            self.inner.teleport(position)
            if self._last_sent is not None:
                self._last_sent = np.asarray(position, float).copy()
