"""An in-process, deterministic robot for unit tests of logic: commands mirror into states with a
first-order velocity-limited response, and faults switch on and off on demand. No MuJoCo needed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pearl_robot.robot.base import Fault, Robot, RobotState
from pearl_robot.robot.spec import RobotSpec

# an arm can rest a little past a software limit (moved by hand, torque off; SafeRobot reports it at enable
# and brings it back): the mock can be put there, not anywhere
REST_MARGIN_RAD = 0.5


def teleport_target(spec: RobotSpec, position: np.ndarray, margin_rad: float) -> np.ndarray:
    """``position`` as float joint angles, or ValueError when it is not one finite angle per joint within
    the joint limits widened by ``margin_rad``."""
    target = np.asarray(position, dtype=float)
    if target.shape != (spec.num_joints,) or not np.all(np.isfinite(target)):
        raise ValueError(f"teleport needs {spec.num_joints} finite joint positions, got {target.shape}")
    low, high = spec.position_min - margin_rad, spec.position_max + margin_rad
    outside = np.flatnonzero((target < low) | (target > high))
    if outside.size:
        i = outside[0]
        raise ValueError(
            f"teleport: {spec.joint_names[i]} = {target[i]:.3f} rad is outside its limits "
            f"[{spec.position_min[i]:.3f}, {spec.position_max[i]:.3f}] (+ {margin_rad:g} rad)"
        )
    return target


@dataclass
class MockFaults:
    stale_reads: bool = False  # read() repeats the last state (same timestamp) and flags it
    dropped_writes: bool = False  # write() reports success but the servos never see the target
    joint_error: str | None = None  # name of a joint that reports a hardware error


class MockRobot(Robot):
    """Each write() advances the mock by one control period (lock-step), moving each joint toward
    its target at most ``max_velocity_rad_s * period_s``."""

    def __init__(self, spec: RobotSpec, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec)
        self.clock = clock
        self.faults = MockFaults()
        self.position = spec.home_rad.copy()
        self.velocity = np.zeros(spec.num_joints)
        self.goal = self.position.copy()
        self.torque_enabled = False
        self.writes_received = 0
        self._last_state: RobotState | None = None

    @classmethod
    def from_address(cls, address: str, spec: RobotSpec, **options: object) -> MockRobot:
        return cls(spec, **options)

    def _connect(self) -> None:
        self.torque_enabled = False

    def _enable(self) -> None:
        self.goal = self.position.copy()
        self.torque_enabled = True

    def _disable(self) -> None:
        self.torque_enabled = False

    def _close(self) -> None:
        self.torque_enabled = False

    def _fault_flags(self) -> tuple[Fault, ...]:
        flags: list[Fault] = []
        if self.faults.joint_error:
            flags.append(Fault("joint_error", self.faults.joint_error, "injected"))
        return tuple(flags)

    def _read(self) -> RobotState:
        if self.faults.stale_reads and self._last_state is not None:
            return RobotState(
                self._last_state.position,
                self._last_state.velocity,
                self._last_state.effort,
                self._last_state.timestamp,
                (*self._fault_flags(), Fault("stale_read")),
            )
        state = RobotState(self.position.copy(), self.velocity.copy(), None, self.clock(), self._fault_flags())
        self._last_state = state
        return state

    def _write(self, targets: np.ndarray) -> np.ndarray:
        self.writes_received += 1
        if not self.faults.dropped_writes:
            self.goal = targets.copy()
        self.step()
        return targets.copy()

    def step(self) -> None:
        """Advance one control period."""
        if not self.torque_enabled:
            self.velocity[:] = 0.0
            return
        period = self.spec.period_s
        max_move = self.spec.velocity_max * period
        move = np.clip(self.goal - self.position, -max_move, max_move)
        self.position = self.position + move
        self.velocity = move / period

    @property
    def can_teleport(self) -> bool:
        return True

    def teleport(self, position: np.ndarray) -> None:
        """Put the arm at ``position``: within the joint limits, or up to REST_MARGIN_RAD past them."""
        self.position = teleport_target(self.spec, position, REST_MARGIN_RAD).copy()
        self.goal = self.position.copy()
        self.velocity[:] = 0.0
