"""Point robots (PEARL's 2-D navigation families), numpy only.

A point on the plane moves by ``0.1 * action`` per step (actions in [-1, 1], so at most 0.1 per axis,
as the reference's [-0.1, 0.1] action box behind rlkit's action normalisation); it observes its
position, never the goal; the reward is minus the distance to the goal.

- ``point-robot``: goals ~ U([-1, 1]^2), start ~ U([-1, 1]^2) per episode (as the reference).
- ``sparse-point-robot``: goals on the unit upper half circle, start at the origin; ``step`` returns the
  dense reward (for the critic) and ``info["sparse_reward"]`` = 1 - distance inside ``goal_radius``
  (0.2), else 0 (the reference's sparsified reward made positive). Deliberate difference: the
  reference spaces its goal angles evenly (``linspace(0, pi, n)``, shuffled with a global seed); here
  the angles are drawn U(0, pi) from the caller's generator, so train and test tasks cover the same arc.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from pearl_robot.tasks.base import Task, TaskFamily

MAX_STEP = 0.1


class PointEnv(gym.Env):
    """2-D point with position increments; ``set_goal`` takes effect at the next ``reset``."""

    metadata = {"render_modes": []}

    def __init__(self, sparse: bool = False, goal_radius: float = 0.2, horizon: int = 20) -> None:
        self.sparse = sparse
        self.goal_radius = float(goal_radius)
        self.horizon = int(horizon)
        bound = 1.0 + MAX_STEP * self.horizon  # start in [-1, 1]^2, at most 0.1 per axis per step
        self.observation_space = gym.spaces.Box(-bound, bound, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.goal = (0.0, 0.0)
        self._next_goal = self.goal
        self._x = self._y = 0.0
        self._steps = 0

    def set_goal(self, goal: tuple[float, float] | list[float]) -> None:
        self._next_goal = (float(goal[0]), float(goal[1]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.goal = self._next_goal
        if self.sparse:
            self._x = self._y = 0.0
        else:
            self._x, self._y = (float(v) for v in self.np_random.uniform(-1.0, 1.0, 2))
        self._steps = 0
        return np.array((self._x, self._y), np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self._x += MAX_STEP * float(a[0])
        self._y += MAX_STEP * float(a[1])
        distance = math.hypot(self._x - self.goal[0], self._y - self.goal[1])
        self._steps += 1
        info: dict[str, float] = {"distance": distance}
        if self.sparse:
            info["sparse_reward"] = 1.0 - distance if distance <= self.goal_radius else 0.0
        obs = np.array((self._x, self._y), np.float32)
        return obs, -distance, False, self._steps >= self.horizon, info


class PointRobotFamily(TaskFamily):
    """Goals ~ U([-1, 1]^2); 80 train / 20 test tasks; 20 steps per path."""

    name = "point-robot"
    num_train_tasks = 80
    num_test_tasks = 20
    max_path_length = 20
    sparse = False

    def __init__(self, goal_radius: float = 0.2, **counts: Any) -> None:
        super().__init__(**counts)
        self.goal_radius = float(goal_radius)

    def make_env(self, seed: int | None = None) -> PointEnv:
        env = PointEnv(sparse=self.sparse, goal_radius=self.goal_radius, horizon=self.max_path_length)
        env.reset(seed=seed)
        return env

    def _goals(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, (n, 2))

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        return [Task(self.name, i, {"goal": [float(g[0]), float(g[1])]}) for i, g in enumerate(self._goals(n, rng))]

    def apply(self, env: gym.Env, task: Task) -> None:
        env.unwrapped.set_goal(task.params["goal"])


class SparsePointRobotFamily(PointRobotFamily):
    """Goals on the unit upper half circle, sparse radius 0.2; start at the origin; 20 steps per path."""

    name = "sparse-point-robot"
    sparse = True

    def _goals(self, n: int, rng: np.random.Generator) -> np.ndarray:
        angles = rng.uniform(0.0, math.pi, n)
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
