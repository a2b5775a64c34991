"""The reach task: bring the end effector to a goal position. Dense reward -distance; an optional
sparse reward (1 inside ``sparse_radius_m``) for sparse-context families."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pearl_robot.errors import ConfigError
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


WORKSPACE_KEYS = ("min_radius_m", "max_radius_m", "min_height_m", "max_height_m")
MAX_DRAWS_PER_GOAL = 1000


def goal_region(spec: RobotSpec) -> dict[str, float]:
    """The optional ``workspace`` section of a hardware file: bounds on a goal's horizontal distance from the
    base's z axis and on its height (m, world frame). An arm's file says where reaching makes sense on it
    (e.g. not over its own base, nor at the singular full stretch straight up)."""
    raw = spec.extra.get("workspace") or {}
    if not isinstance(raw, dict):
        raise ConfigError(spec.source, "workspace", "expected a mapping")
    unknown = sorted(set(raw) - set(WORKSPACE_KEYS))
    if unknown:
        raise ConfigError(spec.source, f"workspace.{unknown[0]}", f"unknown field (known: {', '.join(WORKSPACE_KEYS)})")
    region = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(spec.source, f"workspace.{key}", f"expected a finite number, got {value!r}")
        region[key] = float(value)
    return region


def sample_reachable_goals(
    spec: RobotSpec, n: int, rng: np.random.Generator, margin: float = 0.3, min_height_m: float = 0.05
) -> np.ndarray:
    """Goals the arm can reach: forward kinematics of joint positions drawn inside the limits (shrunk
    by ``margin`` of each range), kept above the table and inside the hardware file's ``workspace``."""
    kin = Kinematics(spec)
    region = goal_region(spec)
    lo_r, hi_r = region.get("min_radius_m", 0.0), region.get("max_radius_m", math.inf)
    lo_z, hi_z = max(min_height_m, region.get("min_height_m", min_height_m)), region.get("max_height_m", math.inf)
    lo, hi = spec.position_min, spec.position_max
    span = hi - lo
    lo, hi = lo + margin / 2 * span, hi - margin / 2 * span
    goals: list[np.ndarray] = []
    draws = 0
    while len(goals) < n:
        if draws >= MAX_DRAWS_PER_GOAL * max(n, 1):
            found = f"{len(goals)} of {n} reachable goals inside it after {draws} draws (margin {margin})"
            raise ConfigError(spec.source, "workspace", f"only {found}: too narrow for this arm")
        draws += 1
        q = spec.home_rad.copy()
        arm = spec.arm_joint_indices
        q[arm] = rng.uniform(lo[arm], hi[arm])
        ee = kin.end_effector(q)
        radius = math.hypot(ee[0], ee[1])
        if lo_z <= ee[2] <= hi_z and lo_r <= radius <= hi_r:
            goals.append(ee)
    return np.array(goals)
