"""What an arm family's policy acts through and is scored by, beside the plain joint actions.

``ControllerActions`` (``action_mode: controller``): the policy drives the scripted reaching controller
(damped least squares, ``pearl_robot.control.scripted``) instead of the joints. Its action is
``[gain, blend]`` or ``[gain, blend, residual per arm joint]`` in [-1, 1]: the controller's gain (log-scaled over
``GAIN_RANGE``), its blend of measured and commanded positions (0..1) and a correction added to the
controller's joint action (``residual_scale`` of the per-step cap). The zero action is a middling
controller (gain 0.27, blend 0.5), so a policy starts where a classical controller is, and what it
learns, conditioned on z, is how to tune and correct it for the arm at hand: a residual policy.

``tolerance_reward``: dm_control's ``rewards.tolerance`` with a Gaussian sigmoid, minus 1: 0 within
``bound`` of the goal, falling to -0.9 at ``bound + margin`` and towards -1 beyond. A positioning task
(place, insert) cares about being within tolerance, soon; far away every miss is as bad as another.
"""

from __future__ import annotations

import math

import numpy as np

from pearl_robot.control.scripted import ScriptedReacher

GAIN_RANGE = (0.05, 1.5)
_TOLERANCE_SCALE = math.sqrt(-2.0 * math.log(0.1))  # the sigmoid is 0.1 at one margin past the bound


def tolerance_reward(distance_m: float, bound_m: float, margin_m: float) -> float:
    if distance_m <= bound_m:
        return 0.0
    x = (distance_m - bound_m) / margin_m * _TOLERANCE_SCALE
    return math.exp(-0.5 * x * x) - 1.0


CONTROLLER_ACTION_NAMES = ("controller.gain", "controller.blend")


def controller_action_names(arm_joint_names: list[str], residual: bool) -> list[str]:
    """The names of a controller action's values, in order (datasets label their columns with them)."""
    return [*CONTROLLER_ACTION_NAMES, *([f"{j}.residual" for j in arm_joint_names] if residual else [])]


class ControllerActions:
    """Turns a controller action ``[gain, blend, residual...]`` into the joint action RobotEnv takes."""

    def __init__(self, reacher: ScriptedReacher, residual_scale: float) -> None:
        self.reacher = reacher
        self.residual_scale = float(residual_scale)
        self.n_arm = len(reacher.arm)

    @property
    def size(self) -> int:
        """2 (gain, blend), plus one residual per arm joint unless ``residual_scale`` is 0."""
        return 2 + (self.n_arm if self.residual_scale > 0 else 0)

    @staticmethod
    def gain(value: float) -> float:
        lo, hi = GAIN_RANGE
        return math.exp(math.log(lo) + (float(np.clip(value, -1, 1)) + 1) / 2 * (math.log(hi) - math.log(lo)))

    @staticmethod
    def blend(value: float) -> float:
        return (float(np.clip(value, -1, 1)) + 1) / 2

    def joint_action(
        self, action: np.ndarray, position: np.ndarray, target: np.ndarray, goal: np.ndarray
    ) -> tuple[np.ndarray, float, float]:
        """(joint action in [-1, 1], gain, blend) for a finite action of the right shape."""
        gain, blend = self.gain(action[0]), self.blend(action[1])
        self.reacher.gain, self.reacher.blend = gain, blend
        base = self.reacher.act(position, goal, target)
        if self.residual_scale > 0:
            base = base + self.residual_scale * np.clip(action[2:], -1, 1)
        return np.clip(base, -1.0, 1.0), gain, blend
