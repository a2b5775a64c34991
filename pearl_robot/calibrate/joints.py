"""Joint calibration with torque off: the calibration pose gives each joint's offset, a small move in
the positive direction gives its direction, a sweep through the full range gives its range.

The procedure only reads the robot (raw angles, torque off) and talks to the operator through a small
``Operator`` object, so the CLI owns the prompts (never ``input()`` in library code). Without an
operator to confirm (non-interactive), each step ends by itself: the pose is taken as soon as the arm
is at rest (so it must be in the pose when the procedure starts: a scripted setup), a direction step
ends once the joint has moved past a threshold and come to rest, and the range sweep lasts a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pearl_robot.calibrate.model import Calibration, JointCalibration
from pearl_robot.errors import PearlRobotError
from pearl_robot.robot.base import Robot
from pearl_robot.robot.spec import RobotSpec


class CalibrationError(PearlRobotError):
    """The operator's moves did not give a usable calibration (a joint that never moved, a tiny range...)."""


class Operator(Protocol):
    def instruct(self, message: str) -> Callable[[], bool] | None:
        """Show ``message``; return a poll that turns True once the operator confirms, or None when no
        one will confirm (non-interactive: the step ends by itself)."""


@dataclass
class JointCalibrationSettings:
    move_threshold_rad: float = 0.15  # a direction move must exceed this
    rest_speed_rad_s: float = 0.05  # below this the arm is at rest
    rest_time_s: float = 0.3
    step_timeout_s: float = 30.0
    range_sweep_s: float = 10.0
    min_range_rad: float = 0.3
    samples_for_pose: int = 10


class JointCalibrationProcedure:
    def __init__(
        self,
        robot: Robot,
        spec: RobotSpec,
        operator: Operator,
        settings: JointCalibrationSettings | None = None,
        calibration_pose_rad: np.ndarray | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``robot`` is a connected raw backend (torque off); ``spec`` the arm's hardware spec."""
        self.robot = robot
        self.spec = spec
        self.operator = operator
        self.settings = settings or JointCalibrationSettings()
        self.pose = np.zeros(spec.num_joints) if calibration_pose_rad is None else np.asarray(calibration_pose_rad)
        self.clock = clock
        self.period_s = spec.period_s

    def _sample(self) -> np.ndarray:
        position = self.robot.read().position
        time.sleep(self.period_s)
        return position

    def _wait(
        self,
        done: Callable[[], bool] | None,
        finished: Callable[[np.ndarray], bool],
        timeout_s: float,
        on_sample: Callable[[np.ndarray], None] | None = None,
    ) -> np.ndarray:
        deadline = self.clock() + timeout_s
        while True:
            position = self._sample()
            if on_sample is not None:
                on_sample(position)
            if done() if done is not None else finished(position):
                return position
            if self.clock() > deadline:
                raise CalibrationError(f"timed out after {timeout_s:.0f} s waiting for the operator")

    def _rest_detector(self, reference: np.ndarray, joint: int | None) -> Callable[[np.ndarray], bool]:
        """True once ``joint`` has moved past the threshold (any time for ``None``) and the arm has been at
        rest for a while."""
        state = {"moved": joint is None, "rest_since": None, "last": reference.copy()}
        s = self.settings

        def finished(position: np.ndarray) -> bool:
            if joint is not None and abs(position[joint] - reference[joint]) > s.move_threshold_rad:
                state["moved"] = True
            speed = np.max(np.abs(position - state["last"])) / self.period_s
            state["last"] = position.copy()
            if not state["moved"] or speed > s.rest_speed_rad_s:
                state["rest_since"] = None
                return False
            state["rest_since"] = state["rest_since"] or self.clock()
            return self.clock() - state["rest_since"] >= s.rest_time_s

        return finished

    def run(self) -> Calibration:
        spec, s = self.spec, self.settings
        names = ", ".join(f"{n}={p:+.2f}" for n, p in zip(spec.joint_names, self.pose))
        done = self.operator.instruct(f"Torque is off. Put the arm in its calibration pose ({names} rad) and hold it.")
        if done is not None:
            self._wait(done, lambda p: True, s.step_timeout_s)
        else:  # a swinging arm is not in its pose
            self._wait(None, self._rest_detector(self._sample(), None), s.step_timeout_s)
        raw_pose = np.mean([self._sample() for _ in range(s.samples_for_pose)], axis=0)

        directions = np.ones(spec.num_joints, dtype=int)
        for joint, name in enumerate(spec.joint_names):
            done = self.operator.instruct(
                f"Move {name} by more than {np.degrees(s.move_threshold_rad):.0f} deg in its POSITIVE direction "
                "and hold it there."
            )
            start = self._sample()
            moved = self._wait(done, self._rest_detector(start, joint), s.step_timeout_s)
            delta = moved[joint] - start[joint]
            if abs(delta) < s.move_threshold_rad / 2:
                raise CalibrationError(f"{name} moved only {delta:+.3f} rad; move it further and run again")
            directions[joint] = 1 if delta > 0 else -1
            done = self.operator.instruct(f"Put {name} back in its calibration pose.")
            self._wait(done, self._rest_detector(moved, joint), s.step_timeout_s)

        lows, highs = raw_pose.copy(), raw_pose.copy()

        def track(position: np.ndarray) -> None:
            np.minimum(lows, position, out=lows)
            np.maximum(highs, position, out=highs)

        done = self.operator.instruct("Move every joint slowly through its full range, end stop to end stop.")
        sweep_end = self.clock() + s.range_sweep_s
        self._wait(done, lambda p: self.clock() >= sweep_end, max(s.step_timeout_s, s.range_sweep_s + 5), track)

        joints: dict[str, JointCalibration] = {}
        for k, name in enumerate(spec.joint_names):
            offset = float(raw_pose[k] - directions[k] * self.pose[k])
            a, b = directions[k] * (lows[k] - offset), directions[k] * (highs[k] - offset)
            lo, hi = float(min(a, b)), float(max(a, b))
            if hi - lo < s.min_range_rad:
                raise CalibrationError(
                    f"{name} swept only {hi - lo:.2f} rad; move it end stop to end stop during the range step"
                )
            joints[name] = JointCalibration(offset, int(directions[k]), lo, hi)
        return Calibration(spec.robot_id, joints, {j.name: j.servo_id for j in spec.joints})
