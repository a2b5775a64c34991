"""A teleoperation command applied to joint targets: joint deltas added, a Cartesian nudge of the end
effector turned into arm-joint deltas by damped least squares on the arm's Jacobian (at the target, so
repeated nudges move the target the way the operator asked even while the arm lags), the result clamped
into the joint limits. The step cap is not applied here: the SafeRobot the targets go through applies it."""

from __future__ import annotations

import numpy as np

from pearl_robot.robot.spec import RobotSpec
from pearl_robot.teleop.source import TeleopCommand

DAMPING = 1e-3  # damped least squares: bounded joint motion near a singular pose


class Jogger:
    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec
        self.arm = spec.arm_joint_indices
        self._reacher = None  # the Jacobian, built at the first nudge (it loads the arm's MJCF)

    def apply(self, target: np.ndarray, command: TeleopCommand) -> np.ndarray:
        target = np.asarray(target, dtype=float).copy()
        if command.joint_delta_rad is not None:
            target += np.asarray(command.joint_delta_rad, dtype=float)
        if command.cartesian_delta_m is not None and np.any(command.cartesian_delta_m):
            target[self.arm] += self.joint_step(target, np.asarray(command.cartesian_delta_m, dtype=float))
        return np.clip(target, self.spec.position_min, self.spec.position_max)

    def joint_step(self, position: np.ndarray, delta_m: np.ndarray) -> np.ndarray:
        """Arm-joint change that moves the end effector by ``delta_m`` (to first order)."""
        jac = self._jacobian(position)
        return jac.T @ np.linalg.solve(jac @ jac.T + DAMPING * np.eye(3), delta_m)

    def _jacobian(self, position: np.ndarray) -> np.ndarray:
        if self._reacher is None:
            from pearl_robot.control.scripted import ScriptedReacher
            from pearl_robot.robot.kinematics import Kinematics

            self._reacher = ScriptedReacher(Kinematics(self.spec), self.arm, np.ones(len(self.arm)))
        return self._reacher.jacobian(position)
