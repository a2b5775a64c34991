"""Rollouts with the numpy agent: one trajectory under a fixed z, written straight into buffer rows.

Every trajectory starts with ``env.reset(seed=...)`` from the caller's generator, so the environment's
randomness is a function of the learner's saved RNG state (what makes ``--resume`` exact).
Bootstrapping uses ``terminated`` only; a time-limit truncation is not a terminal (the reference's old
gym API could not tell them apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from pearl_robot.pearl.buffers import Layout
from pearl_robot.pearl.numpy_policy import NumpyAgent

SEED_BOUND = 2**31 - 1


@dataclass
class Path:
    rows: np.ndarray  # [length, layout.width]
    dense_return: float
    sparse_return: float
    z: np.ndarray
    z_source: str  # "prior" or "posterior"
    terminated: bool

    @property
    def length(self) -> int:
        return len(self.rows)

    def reported_return(self, sparse_rewards: bool) -> float:
        return self.sparse_return if sparse_rewards else self.dense_return


def rollout(
    env: gym.Env,
    agent: NumpyAgent,
    z: np.ndarray,
    layout: Layout,
    max_path_length: int,
    rng: np.random.Generator,
    deterministic: bool = False,
    z_source: str = "prior",
) -> Path:
    """One trajectory of at most ``max_path_length`` steps under ``z``."""
    agent.set_z(z)
    obs, _ = env.reset(seed=int(rng.integers(SEED_BOUND)))
    rows = np.empty((max_path_length, layout.width), np.float32)
    o_sl, a_sl, no_sl = layout.obs, layout.action, layout.next_obs
    r_col, s_col, t_col = layout.reward, layout.sparse_reward, layout.terminal
    act = agent.act
    step = env.step
    terminated = False
    n = 0
    for n in range(1, max_path_length + 1):
        action = act(obs, rng, deterministic)
        next_obs, reward, terminated, truncated, info = step(action)
        row = rows[n - 1]
        row[o_sl] = obs
        row[a_sl] = action
        row[r_col] = reward
        row[s_col] = info.get("sparse_reward", reward)
        row[no_sl] = next_obs
        row[t_col] = terminated
        if terminated or truncated:
            break
        obs = next_obs
    rows = rows[:n]
    return Path(
        rows=rows,
        dense_return=float(rows[:, r_col].sum(dtype=np.float64)),
        sparse_return=float(rows[:, s_col].sum(dtype=np.float64)),
        z=np.asarray(z, np.float32).copy(),
        z_source=z_source,
        terminated=bool(terminated),
    )
