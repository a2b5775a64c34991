"""The reach task: bring the end effector to a goal position. Dense reward -distance; an optional
sparse reward (1 inside ``sparse_radius_m``) for sparse-context families."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pearl_robot.robot.kinematics import Kinematics
from pearl_robot.robot.spec import RobotSpec


@dataclass
class ReachTask:
    goal: np.ndarray  # (3,) metres, world frame
    horizon: int = 100  # control steps per episode (5 s at 20 Hz)
    goal_observed: bool = True  # False: the agent must infer the goal from rewards
    success_radius_m: float = 0.02
    sparse_radius_m: float = 0.05
    action_cost: float = 0.0

    def reward(self, end_effector: np.ndarray, action: np.ndarray) -> tuple[float, dict[str, float]]:
        distance = float(np.linalg.norm(end_effector - self.goal))
        reward = -distance - self.action_cost * float(np.sum(np.square(action)))
        return reward, {
            "distance_m": distance,
            "success": float(distance < self.success_radius_m),
            "sparse_reward": float(distance < self.sparse_radius_m),
        }


def sample_reachable_goals(
    spec: RobotSpec, n: int, rng: np.random.Generator, margin: float = 0.3, min_height_m: float = 0.05
) -> np.ndarray:
    """Goals the arm can reach: forward kinematics of joint positions drawn inside the limits (shrunk
    by ``margin`` of each range), kept above the table."""
    kin = Kinematics(spec)
    lo, hi = spec.position_min, spec.position_max
    span = hi - lo
    lo, hi = lo + margin / 2 * span, hi - margin / 2 * span
    goals: list[np.ndarray] = []
    while len(goals) < n:
        q = spec.home_rad.copy()
        arm = spec.arm_joint_indices
        q[arm] = rng.uniform(lo[arm], hi[arm])
        ee = kin.end_effector(q)
        if ee[2] >= min_height_m:
            goals.append(ee)
    return np.array(goals)
