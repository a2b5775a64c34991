"""A scripted reaching controller (damped least squares on a numerical Jacobian): a baseline, the
foundation demo's driver, and the base of the arm families' controller actions. Works on observations of
RobotEnv, so it runs on every backend.

Two parameters, the ones a practitioner tunes on an arm:

- ``gain``: the share of the end-effector error corrected per control period;
- ``blend``: which joint positions the error is computed from, between the measured ones (0: closed loop,
  removes a payload's sag but oscillates behind control latency) and the commanded targets (1: open loop
  on the commands, indifferent to latency but blind to sag, friction and a current limit).
"""

from __future__ import annotations

import numpy as np

from pearl_robot.robot.kinematics import Kinematics


class ScriptedReacher:
    def __init__(
        self,
        kinematics: Kinematics,
        arm: np.ndarray,
        action_scale_rad: np.ndarray,
        gain: float = 0.5,
        blend: float = 0.0,
    ) -> None:
        self.kinematics = kinematics
        self.arm = arm
        self.action_scale_rad = np.asarray(action_scale_rad, dtype=float)
        self.gain = gain
        self.blend = blend

    def jacobian(self, position: np.ndarray, eps: float = 1e-4) -> np.ndarray:
        base = self.kinematics.end_effector(position)
        columns = []
        for joint in self.arm:
            q = position.copy()
            q[joint] += eps
            columns.append((self.kinematics.end_effector(q) - base) / eps)
        return np.stack(columns, axis=1)

    def act(self, position: np.ndarray, goal: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
        """Action in [-1, 1] per arm joint that moves the end effector toward ``goal``; ``target``: the
        commanded joint targets (``blend`` mixes them in; without them the controller is closed loop)."""
        position = np.asarray(position, dtype=float)
        if target is not None and self.blend:
            position = position + self.blend * (np.asarray(target, dtype=float) - position)
        error = goal - self.kinematics.end_effector(position)
        jac = self.jacobian(position)
        damping = 1e-3
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(3), self.gain * error)
        return np.clip(dq / self.action_scale_rad, -1.0, 1.0)
