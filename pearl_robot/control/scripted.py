"""A scripted reaching controller (damped least squares on a numerical Jacobian): a baseline and the
foundation demo's driver. Works on observations of RobotEnv, so it runs on every backend."""

from __future__ import annotations

import numpy as np

from pearl_robot.robot.kinematics import Kinematics


class ScriptedReacher:
    def __init__(self, kinematics: Kinematics, arm: np.ndarray, action_scale_rad: np.ndarray, gain: float = 0.5):
        self.kinematics = kinematics
        self.arm = arm
        self.action_scale_rad = np.asarray(action_scale_rad, dtype=float)
        self.gain = gain

    def jacobian(self, position: np.ndarray, eps: float = 1e-4) -> np.ndarray:
        base = self.kinematics.end_effector(position)
        columns = []
        for joint in self.arm:
            q = position.copy()
            q[joint] += eps
            columns.append((self.kinematics.end_effector(q) - base) / eps)
        return np.stack(columns, axis=1)

    def act(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Action in [-1, 1] per arm joint that moves the end effector toward ``goal``."""
        error = goal - self.kinematics.end_effector(position)
        jac = self.jacobian(position)
        damping = 1e-3
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(3), self.gain * error)
        return np.clip(dq / self.action_scale_rad, -1.0, 1.0)
