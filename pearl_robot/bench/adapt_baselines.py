"""The classical baselines of ``bench adapt``: the scripted reaching controller (``ScriptedReacher``,
damped least squares with a gain and a blend of measured and commanded positions) on the same physics
and reward as the learned methods, driving the joints directly (``action_mode: joint``), and uniform
random joint actions (the floor).

Tuning never sees an evaluation goal sequence: every grid point is scored on tuning episodes of their own
(``TUNING_SEEDS``: reset seeds, so start pose and goal, apart from the evaluation's ``1000 * (r + 1)``).

- best single: the grid point with the best mean return over ALL the training tasks of a split (what one
  practitioner tuning one controller for the whole fleet would ship);
- per task: the best grid point on each held-out task itself (the classical oracle: tuned on its task,
  which is what an oracle is).

The policies here have the ``AdaptivePolicy`` interface (``act``, ``context_row``, ``posterior``, ``prior``),
so they are evaluated through the same ``AdaptationSession`` path as the learned ones;
:func:`episode_return` is the direct loop tuning uses, and gives the same returns (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pearl_robot.control.scripted import ScriptedReacher
from pearl_robot.pearl.config import PEARLConfig

GAINS = (0.05, 0.1, 0.2, 0.35, 0.6, 1.0, 1.5)
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
TUNING_SEEDS = (500, 501)


@dataclass(frozen=True)
class Grid:
    gains: tuple[float, ...] = GAINS
    blends: tuple[float, ...] = BLENDS
    tuning_seeds: tuple[int, ...] = TUNING_SEEDS

    def points(self) -> list[tuple[float, float]]:
        return [(g, b) for g in self.gains for b in self.blends]

    def to_dict(self) -> dict[str, list]:
        return {"gains": list(self.gains), "blends": list(self.blends), "tuning_seeds": list(self.tuning_seeds)}


def scripted_config(cfg: PEARLConfig) -> PEARLConfig:
    """``cfg``'s family with joint actions and no observed dynamics: the same arms, tasks, physics and
    reward, driven by a controller instead of a policy."""
    params = {**cfg.family_params, "action_mode": "joint", "observe_dynamics": False}
    return replace(cfg, family_params=params)


class _NonAdaptive:
    """The session's policy interface for a policy that ignores z and the context."""

    latent_size = 1

    def context_reward(self, reward: float, info: dict[str, Any]) -> float:  # noqa: ARG002
        return float(reward)

    def context_row(self, obs, action, reward, next_obs) -> np.ndarray:  # noqa: ARG002
        return np.zeros(1)

    def posterior(self, context) -> tuple[np.ndarray, np.ndarray]:  # noqa: ARG002
        return np.zeros(1), np.ones(1)

    def prior(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(1), np.ones(1)


class RandomPolicy(_NonAdaptive):
    """Uniform random actions: the floor for normalised scores."""

    def __init__(self, action_dim: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.action_dim = action_dim

    def act(self, obs, z, deterministic=True):  # noqa: ARG002
        return self.rng.uniform(-1, 1, self.action_dim)


class ScriptedPolicy(_NonAdaptive):
    """The scripted reacher on ``env`` (a joint-action arm env): it reads the measured position, the goal
    and the commanded target from the env, as a classical controller reads them off the arm."""

    def __init__(self, env: Any, gain: float, blend: float) -> None:
        self.env = env.unwrapped
        self.reacher = ScriptedReacher(self.env.kinematics, self.env.arm, self.env.action_scale_rad, gain, blend)

    def act(self, obs, z, deterministic=True):  # noqa: ARG002
        env = self.env
        return self.reacher.act(env.last_state.position, env.task.goal, env.commanded_target)


def episode_return(env: Any, gain: float, blend: float, seed: int) -> float:
    """One episode of the scripted reacher from ``env.reset(seed=seed)``; the task must already be applied."""
    policy = ScriptedPolicy(env, gain, blend)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy.act(obs, None))
        total += float(reward)
        done = terminated or truncated
    return total


def grid_returns(family: Any, tasks: Sequence[Any], grid: Grid) -> np.ndarray:
    """``[tasks, grid points]``: mean return of each grid point over the tuning episodes of each task."""
    env = family.make_env(seed=0)
    out = np.zeros((len(tasks), len(grid.points())))
    try:
        for i, task in enumerate(tasks):
            for j, (gain, blend) in enumerate(grid.points()):
                returns = []
                for seed in grid.tuning_seeds:
                    family.apply(env, task)  # applied at each reset; re-applied so every episode is on it
                    returns.append(episode_return(env, gain, blend, seed))
                out[i, j] = np.mean(returns)
    finally:
        env.close()
    return out


def random_returns(family: Any, tasks: Sequence[Any], grid: Grid, seed: int = 0) -> np.ndarray:
    """``[tasks, tuning seeds]``: the return of uniform random joint actions on each of ``grid``'s tuning
    episodes (the floor ``grid_returns`` is measured against)."""
    env = family.make_env(seed=0)
    rng = np.random.default_rng(seed)
    out = np.zeros((len(tasks), len(grid.tuning_seeds)))
    try:
        for i, task in enumerate(tasks):
            for j, episode_seed in enumerate(grid.tuning_seeds):
                family.apply(env, task)
                env.reset(seed=episode_seed)
                total, done = 0.0, False
                while not done:
                    _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
                    total += float(reward)
                    done = terminated or truncated
                out[i, j] = total
    finally:
        env.close()
    return out


def tune_best_single(family: Any, train_tasks: Sequence[Any], grid: Grid) -> dict[str, float]:
    """The grid point with the best mean tuning return over all ``train_tasks``."""
    returns = grid_returns(family, train_tasks, grid).mean(axis=0)
    gain, blend = grid.points()[int(np.argmax(returns))]
    return {"gain": gain, "blend": blend, "tuning_return": round(float(returns.max()), 4)}


def tune_per_task(family: Any, tasks: Sequence[Any], grid: Grid) -> list[dict[str, float]]:
    """Per task, the grid point with the best tuning return on that task (the classical oracle)."""
    returns = grid_returns(family, tasks, grid)
    chosen = []
    for row in returns:
        gain, blend = grid.points()[int(np.argmax(row))]
        chosen.append({"gain": gain, "blend": blend, "tuning_return": round(float(row.max()), 4)})
    return chosen
